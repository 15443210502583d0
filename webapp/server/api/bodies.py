"""The public API's request bodies and queries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ...domain.actions import ACTION_NAMES
from ...domain.limits import MAX_DELAY_S
from ...domain.queues import DEFAULT_QUEUE, MAX_UNIQUE_FOR_S
from ...domain.statuses import Status
from ...domain.timeutil import utcnow
from .schemas import (
    MAX_BATCH,
    Body,
    JobId,
    JobJson,
    JobType,
    Name,
    Query,
    Reason,
    StatusName,
    TimeText,
    no_nul,
    once_each,
)

HELD_RUNS_WHEN_RELEASED = "a held job runs when force-start releases it: no delay with hold"


class CreateJob(Body):
    type: JobType = Field(description="What the job does; workers pick their handler by it.")
    payload: JobJson = None
    priority: int = Field(0, ge=-1_000_000, le=1_000_000, description="Higher runs first.")
    max_attempts: int | None = Field(None, ge=1, le=1000, description="Default JOBWARDEN_DEFAULT_MAX_ATTEMPTS.")
    timeout_s: int | None = Field(None, ge=1, le=30 * 24 * 3600, description="The worker kills the job after this.")
    hold: bool = Field(False, description="Create as pending: released by force-start.")
    queue: Name = Field(DEFAULT_QUEUE, description="The queue whose limits and pause hold the job.")
    concurrency_key: Name | None = Field(None, description="The queue's `key_concurrency` counts live jobs per key.")
    unique_key: Name | None = Field(
        None,
        description="With a live job of the same type and key, nothing is created: 200 with that job and "
        '`"duplicate": true`.',
    )
    unique_for_s: float | None = Field(
        None,
        gt=0,
        le=MAX_UNIQUE_FOR_S,
        description="With `unique_key`: also match a job of the key that finished within this many seconds.",
    )

    delay_s: float | None = Field(
        None, ge=0, le=MAX_DELAY_S, description="Not claimed until this many seconds after the create (at most a year)."
    )
    run_after: TimeText | None = Field(
        None,
        description="Not claimed before this time: ISO 8601 with its time zone, at most a year ahead (a past time "
        "runs now).",
    )

    @model_validator(mode="after")
    def unique_for_needs_a_key(self) -> CreateJob:
        if self.unique_for_s is not None and self.unique_key is None:
            raise ValueError("unique_for_s needs a unique_key")
        return self

    @field_validator("delay_s")
    @classmethod
    def delay_of_a_queued_job(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("hold"):
            raise ValueError(HELD_RUNS_WHEN_RELEASED)
        return value

    @field_validator("run_after")
    @classmethod
    def one_first_run_within_a_year(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return value
        if info.data.get("hold"):
            raise ValueError(HELD_RUNS_WHEN_RELEASED)
        if info.data.get("delay_s") is not None:
            raise ValueError("give delay_s or run_after, not both")
        if value - utcnow() > timedelta(seconds=MAX_DELAY_S):
            raise ValueError("at most a year ahead")
        return value


class BulkCreate(Body):
    jobs: list[CreateJob] = Field(min_length=1, max_length=MAX_BATCH)


SortKey = Literal["id", "created_at", "updated_at", "priority", "type", "status"]  # jobs.SORT_COLUMNS


class JobQuery(Body):
    """The list's filters; also the `filter` of a bulk action (a JSON body, hence a Body)."""

    status: Annotated[list[StatusName], AfterValidator(once_each)] = Field(default_factory=list, max_length=len(Status))
    type: Name | None = None
    worker: Name | None = None
    schedule: Name | None = None
    queue: Name | None = None
    q: Annotated[str, Field(max_length=200), AfterValidator(no_nul)] | None = None


class ListQuery(JobQuery):
    model_config = Query.model_config  # the list's query: text read as each field's type

    sort: SortKey = "id"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(50, ge=1, le=500)
    cursor: Annotated[str, Field(max_length=500), AfterValidator(no_nul)] | None = None


class ReasonBody(Body):
    reason: Reason | None = None


class BulkAction(Body):
    action: Literal[ACTION_NAMES]  # type: ignore[valid-type]  # the names, from webapp.domain.actions
    reason: Reason | None = None
    ids: list[JobId] | None = Field(None, min_length=1, max_length=MAX_BATCH)
    filter: JobQuery | None = None

    @model_validator(mode="after")
    def _ids_or_filter(self) -> BulkAction:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter, not both and not neither")
        return self


class LogQuery(Query):
    attempt: int | None = Field(None, ge=1, le=2**31 - 1, description="Default: the newest attempt.")
    offset: int = Field(0, ge=0, le=2**62, description="A byte offset in the log: send `next_offset` to follow.")
    format: Literal["json", "text"] = Field("json", description="`text`: the log as text/plain.")
