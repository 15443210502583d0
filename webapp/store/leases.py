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
from sqlalchemy import ColumnElement, bindparam, case, or_, update
from sqlalchemy.orm import InstrumentedAttribute

from ..domain.statuses import LIVE
from ..domain.timeutil import isoformat, utcnow
from .extensions import db
from .models import Job, JobRow, UTCDateTime
from .wakeup import announce_claimable


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
    """
    released = db.session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.attempt == attempt,
            Job.status.not_in(LIVE),
            Job.lease_expires_at.is_not(None),
        )
        .values(lease_expires_at=None)
        .returning(Job.status)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if released == "queued":
        announce_claimable()
    return released is not None
