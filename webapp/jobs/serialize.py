"""Jobs, attempts and events as the API's JSON; the job's shape is defined once, by `JobOut`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Float, Numeric, case, cast, false, func, literal, literal_column
from sqlalchemy.sql.selectable import NamedFromClause
from sqlalchemy.types import NullType

from ..domain.statuses import LIVE, Status
from ..domain.timeutil import isoformat
from ..store.leases import stopping_json
from ..store.models import Job, JobAttempt, JobEvent, JobRow


class _IsoTime:
    """Marks a field of `JobOut` as a time: a datetime column shown as ISO 8601 UTC."""


ISO_TIME = _IsoTime()
Time = Annotated[str | None, Field(description="ISO 8601 UTC"), ISO_TIME]


class Stopping(BaseModel):
    attempt: int
    deadline: Time = Field(description="When the attempt's lease runs out: its worker has stopped it by then.")


class JobOut(BaseModel):
    """A job as the API, the webhooks and the dashboard's JSON show it: the one definition
    `job_json`, `job_json_sql` and the OpenAPI document are made from."""

    model_config = ConfigDict(extra="allow")

    id: int
    type: str
    payload: Any = None
    status: Status
    priority: int
    attempt: int
    max_attempts: int
    timeout_s: int | None
    progress: float | None
    stage: str | None
    current_step: str | None
    worker_id: str | None
    heartbeat_at: Time
    run_after: Time
    created_at: Time
    claimed_at: Time
    started_at: Time
    finished_at: Time
    updated_at: Time
    result: Any = None
    last_error: str | None
    exit_code: int | None
    cancel_requested: bool
    queue: str
    concurrency_key: str | None
    unique_key: str | None
    schedule: str | None = Field(None, description="The schedule that made the job, if one did.")
    scheduled_for: Time = Field(None, description="The fire time the schedule made it for (UTC).")
    stopping: Stopping | None = Field(
        description="While an ended attempt's process may still live: the job runs again only after it."
    )


JOB_TIMES = tuple(name for name, field in JobOut.model_fields.items() if ISO_TIME in field.metadata)
# Shown as they are stored, but for the computed ones: `cancel_requested` a bool whatever the
# column held, `stopping` from the lease of an ended attempt.
COMPUTED = ("cancel_requested", "stopping")
JOB_FIELDS = tuple(name for name in JobOut.model_fields if name not in JOB_TIMES and name not in COMPUTED)


# SQLite stores an integral REAL as an integer and its RETURNING hands it back as one:
# a float column is printed as a float whichever way the job was read (100.0, not 100).
JOB_FLOATS = tuple(name for name in JOB_FIELDS if isinstance(Job.__table__.c[name].type, Float))


def job_json(job: Job | JobRow) -> dict[str, Any]:
    data = {name: getattr(job, name) for name in JOB_FIELDS}
    for name in JOB_FLOATS:
        if data[name] is not None:
            data[name] = float(data[name])
    data.update({name: isoformat(getattr(job, name)) for name in JOB_TIMES})
    data["cancel_requested"] = bool(job.cancel_requested)
    data["stopping"] = stopping_json(job)
    return data


def job_json_sql(rows: NamedFromClause) -> ColumnElement[Any]:
    """`job_json` built by PostgreSQL from the row in `rows` (the jobs' columns), as JSONB.

    For a write that must stay inside one statement (the webhook outbox): the row's own
    JSON without the columns `job_json` leaves out, its times printed as `isoformat` does
    (no fraction when it is zero) and its floats as Python's JSON does (50.0, not 50), so
    the stored JSON is the same whichever side built it.
    """
    shown = {*JOB_FIELDS, *JOB_TIMES, "cancel_requested"}  # and `stopping`, built below
    row: ColumnElement[Any] = func.to_jsonb(rows.table_valued())
    for column in rows.c:
        if column.name not in shown:
            row = row.op("-")(literal_column(f"'{column.name}'"))
    pairs: list[Any] = []
    for name in JOB_FIELDS:
        if isinstance(rows.c[name].type, Float):
            # PostgreSQL prints an integral float without its ".0"; numeric with scale 1 keeps it.
            value = rows.c[name]
            as_python = case(
                (value == func.trunc(value), func.to_jsonb(func.round(cast(value, Numeric), literal_column("1")))),
                else_=func.to_jsonb(value),
            )
            pairs += [literal_column(f"'{name}'"), as_python]
    # One untyped parameter for all the times: the statement stays under psycopg's 4 KiB
    # limit for caching its parsed form (over it, every execution parses it again).
    iso = literal('YYYY-MM-DD"T"HH24:MI:SS.US"Z"', NullType())
    for name in JOB_TIMES:
        stamp = func.to_char(rows.c[name], iso)
        pairs += [literal_column(f"'{name}'"), func.replace(stamp, literal_column("'.000000Z'"), literal_column("'Z'"))]
    pairs += [literal_column("'cancel_requested'"), func.coalesce(rows.c.cancel_requested, false())]
    # `stopping_json`: while an ended attempt's lease runs, its number and the lease's end.
    lease = rows.c.lease_expires_at
    stopping = case(
        (
            rows.c.status.not_in(LIVE) & (lease > func.timezone(literal_column("'UTC'"), func.now())),
            func.jsonb_build_object(
                literal_column("'attempt'"),
                rows.c.attempt,
                literal_column("'deadline'"),
                func.replace(func.to_char(lease, iso), literal_column("'.000000Z'"), literal_column("'Z'")),
            ),
        ),
        else_=literal_column("'null'::jsonb"),
    )
    pairs += [literal_column("'stopping'"), stopping]
    return row.op("||")(func.jsonb_build_object(*pairs))


def claimed_job_json(job: JobRow) -> dict[str, Any]:
    return {**job_json(job), "lease_token": job.lease_token}


def attempt_json(attempt: JobAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "worker_id": attempt.worker_id,
        "claimed_at": isoformat(attempt.claimed_at),
        "started_at": isoformat(attempt.started_at),
        "finished_at": isoformat(attempt.finished_at),
        "outcome": attempt.outcome,
        "error": attempt.error,
        "exit_code": attempt.exit_code,
        "step": attempt.step,
        "output_tail": attempt.output_tail,
        "argv": attempt.argv,
    }


def step_json(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "started_at": isoformat(step["started_at"]), "finished_at": isoformat(step["finished_at"])}


def event_json(event: JobEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": isoformat(event.at),
        "kind": event.kind,
        "actor": event.actor,
        "action": event.action,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "attempt": event.attempt,
        "reason": event.reason,
        "data": event.data,
    }
