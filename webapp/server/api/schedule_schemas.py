"""The schedule API's request and answer models (validation and the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from ...domain.schedule_policies import MISFIRE_POLICIES, OVERLAP_POLICIES
from ...jobs.serialize import Time
from .schemas import Body, JobJson, JobType, Name

MisfirePolicy = Literal[MISFIRE_POLICIES]  # type: ignore[valid-type]
OverlapPolicy = Literal[OVERLAP_POLICIES]  # type: ignore[valid-type]
# A schedule's name is a path segment of its URL: letters, digits and . _ : -
ScheduleName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class ScheduleSettings(Body):
    cron: str | None = Field(None, max_length=200, description="5 fields: minute hour day-of-month month day-of-week.")
    every_s: int | None = Field(None, le=366 * 24 * 3600, description="Fire every this many seconds (instead of cron).")
    timezone: str | None = Field(None, max_length=64, description="IANA zone of the cron expression; default UTC.")
    type: JobType | None = None
    payload: JobJson = None
    priority: int | None = Field(None, ge=-1_000_000, le=1_000_000)
    max_attempts: int | None = Field(None, ge=1, le=1000)
    queue: Name | None = None
    misfire: MisfirePolicy | None = Field(
        None,
        description="Times no replica ran for: `skip` them, `run_once` for the newest (default), or `all` (capped).",
    )
    overlap: OverlapPolicy | None = Field(
        None, description="When the previous run is still live: `allow` (default), `skip` the time, or `wait` for it."
    )


class CreateSchedule(ScheduleSettings):
    name: ScheduleName
    type: JobType


class DeclaredSchedules(Body):
    """Every schedule a worker's code declares (the whole set: ones left out are marked missing)."""

    schedules: list[CreateSchedule] = Field(max_length=10_000)


class LastJob(BaseModel):
    id: int
    status: str
    scheduled_for: Time


class ScheduleOut(BaseModel):
    name: str
    cron: str | None
    every_s: int | None
    timezone: str
    type: str
    payload: Any = None
    priority: int
    max_attempts: int | None
    queue: str
    misfire: str
    overlap: str
    description: str = Field(description='The "when" in words, e.g. "every day at 02:30 Europe/Berlin".')
    paused: bool
    next_fire_at: Time
    source: Literal["code", "api"]
    missing_from_code: bool = Field(description="Declared in code once, no longer: kept until removed.")
    created_at: Time
    updated_at: Time
    last_job: LastJob | None


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


class SyncResult(BaseModel):
    created: list[str]
    changed: list[str]
    missing: list[str]
    conflicts: list[str] = Field(description="Declared names taken by a schedule made through the API: left alone.")
