"""Leases: at most one live copy of a job, whatever operators, the monitor or the network do.

A claim grants the worker a lease as long as the job type's heartbeat timeout; each
heartbeat (and step report) renews it. The worker, and the supervisor of each of its
commands (which outlives a frozen worker), stops the job before an unrenewed lease
runs out — counted on their own monotonic clocks from when the renewing request was
sent, a margin early (webapp.worker.lease_clock) — so once the server's `lease_expires_at` has passed, no copy
of that attempt lives, whatever happened to the worker or the network.

An attempt that ends without its worker saying its process stopped (an operator's
cancel or mark failed, the monitor's orphaning) keeps `lease_expires_at`: the job is
`stopping` until the worker confirms (`release`) or the lease runs out. A recovery
action on such a job waits for it: the job is queued at once, but the claim skips it
until then — a condition of the claim statement itself (`claimable`), not a read before
a write. Reports of the worker's own outcome (complete, fail, hand-back) come after its
process stopped, so they clear the lease in the same statement.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    FromClause,
    Insert,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute

from ..domain.actors import WORKER
from ..domain.event_kinds import EventKind
from ..domain.statuses import LIVE, Status
from ..domain.timeutil import isoformat, utcnow
from .dialects import on_postgresql
from .extensions import db
from .models import Job, JobEvent, JobRow, UTCDateTime
from .wakeup import CHANNEL, LEASE_RELEASED, notification_of_row, wake_here_after_commit

_JOBS = Job.__table__
_EVENTS = JobEvent.__table__


def lease_seconds(job_type: str) -> float:
    """A job type's lease: its heartbeat timeout (`JOBWARDEN_TYPE_TIMEOUTS`, else the default),
    so the monitor, which orphans a job silent that long, never finds a lease still running."""
    per_type = current_app.config["JOBWARDEN_TYPE_TIMEOUTS"]
    return float(per_type.get(job_type, current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"]))


def shortest_lease_seconds() -> float:
    """The shortest heartbeat timeout of any type: the soonest the monitor may find a job, and
    with it its worker, silent (webapp.monitor.settle)."""
    return min(
        [float(current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"])]
        + [float(seconds) for seconds in current_app.config["JOBWARDEN_TYPE_TIMEOUTS"].values()]
    )


def typed() -> tuple[str, ...]:
    """The types with a lease of their own: part of a cached statement's shape."""
    return tuple(sorted(current_app.config["JOBWARDEN_TYPE_TIMEOUTS"]))


def expiry_sql(
    type_column: ColumnElement[str] | InstrumentedAttribute[str], types: tuple[str, ...]
) -> ColumnElement[datetime]:
    """The new `lease_expires_at` of a row, by its type; the values come from `expiry_params`."""
    default = bindparam("lease_until_default", type_=UTCDateTime())
    if not types:
        return default
    return case(
        {name: bindparam(f"lease_until_{number}", type_=UTCDateTime()) for number, name in enumerate(types)},
        value=type_column,
        else_=default,
    )


def expiry_params(now: datetime, types: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "lease_until_default": now + timedelta(seconds=current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"])
    }
    for number, name in enumerate(types):
        params[f"lease_until_{number}"] = now + timedelta(seconds=lease_seconds(name))
    return params


def claimable(lease_column: ColumnElement[datetime], now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """No earlier attempt of the job may still be live: its lease was released or ran out."""
    return or_(lease_column.is_(None), lease_column <= now)


def stopping_json(job: Job | JobRow, now: datetime | None = None) -> dict[str, Any] | None:
    """`{"attempt", "deadline"}` while an ended attempt's process may still live, else None."""
    if job.status in LIVE or job.lease_expires_at is None:
        return None
    if job.lease_expires_at <= (now or utcnow()):
        return None
    return {"attempt": job.attempt, "deadline": isoformat(job.lease_expires_at)}


def release(job_id: int, attempt: int) -> bool:
    """The worker of `attempt` confirms its process stopped: the job need not wait for the lease.

    Only for an attempt that ended (not claimed or running) and is still the job's latest;
    True when a lease was released. Runs in the caller's transaction.

    A queued job released so is claimable from this commit on, though nothing queued it: its
    note (`wakeup.LEASE_RELEASED`) says so on its timeline and to SQLite's watcher in every other
    process; on PostgreSQL the statement also notifies the waiting claims that take its kind.

    The lease's token goes too (nothing of the attempt's process is left to write), which seals
    the attempt's log; a cancelled job's stays for its confirmation (`cancellation.confirm_stopped`),
    which drops it.
    """
    params = {"release_job_id": job_id, "release_attempt": attempt, "release_now": utcnow()}
    released = (
        update(_JOBS)
        .where(
            _JOBS.c.id == bindparam("release_job_id"),
            _JOBS.c.attempt == bindparam("release_attempt"),
            _JOBS.c.status.not_in(LIVE),
            _JOBS.c.lease_expires_at.is_not(None),
        )
        .values(
            lease_expires_at=None,
            lease_token=case((_JOBS.c.status == Status.CANCELLED, _JOBS.c.lease_token), else_=None),
        )
        .returning(_JOBS.c.id, _JOBS.c.status, _JOBS.c.type, _JOBS.c.queue, _JOBS.c.attempt)
    )
    if on_postgresql():
        rows = released.cte("released")
        notice = (
            select(func.pg_notify(literal(CHANNEL), notification_of_row(rows.c.type, rows.c.queue)))
            .where(rows.c.status == Status.QUEUED)
            .cte("claimable_notice")
        )
        statement = (
            select(rows.c.status, rows.c.type, rows.c.queue)
            .outerjoin(notice, true())  # a SELECT CTE runs only when the statement reads it
            .add_cte(_claimable_note(rows).cte("claimable_note"))
        )
        row = db.session.execute(statement, params).one_or_none()
    else:
        row = db.session.execute(released, params).one_or_none()
        if row is not None and row.status == Status.QUEUED:
            db.session.execute(_claimable_note(select(_JOBS).where(_JOBS.c.id == row.id).subquery("released")), params)
    if row is None:
        return False
    if row.status == Status.QUEUED:
        wake_here_after_commit({(row.type, row.queue): 1})
    return True


def _claimable_note(rows: FromClause) -> Insert:
    """The note of each released row that is queued: it may run at once. Its actor is a worker
    that did not say its id: the confirmation names only the attempt."""
    return insert(_EVENTS).from_select(
        ["job_id", "kind", "actor", "at", "action", "attempt", "reason"],
        select(
            rows.c.id,
            literal(str(EventKind.NOTE)),
            literal(WORKER),
            bindparam("release_now", type_=UTCDateTime()),
            literal(LEASE_RELEASED),
            rows.c.attempt,
            literal("the attempt's process stopped: the job need not wait for its lease"),
        ).where(rows.c.status == Status.QUEUED),
    )
