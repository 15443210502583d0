"""The scans (each one index range; the benchmark EXPLAINs these) and how their rows are judged."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, select

from .. import jobs
from ..domain.outcomes import ORPHANED_PREFIX
from ..domain.statuses import LIVE, Status
from ..domain.timeutil import isoformat, utcnow
from ..domain.worker_states import WorkerState
from ..store.models import Job, Worker
from ..store.status_sql import status_is
from .settings import monitor_settings

PRUNED_STATUSES = (Status.COMPLETED, Status.CANCELLED)


def live_scan(cutoff: datetime, limit: int) -> Select:
    """Claimed or running jobs whose last heartbeat is older than `cutoff` (ix_jobs_status_heartbeat)."""
    return (
        select(Job.id, Job.type, Job.status, Job.worker_id, Job.heartbeat_at, Job.claimed_at)
        .where(Job.status.in_(LIVE), Job.heartbeat_at < cutoff)
        .order_by(Job.heartbeat_at)
        .limit(limit)
    )


def unstarted_scan(cutoff: datetime, limit: int) -> Select:
    """Claimed jobs claimed before `cutoff` (a status-prefixed index; claimed jobs are few)."""
    return (
        select(Job.id, Job.type, Job.status, Job.worker_id, Job.heartbeat_at, Job.claimed_at)
        .where(Job.status == Status.CLAIMED, Job.claimed_at < cutoff)
        .order_by(Job.claimed_at)
        .limit(limit)
    )


def pending_scan(cutoff: datetime, limit: int) -> Select:
    """Jobs held in pending since before `cutoff` (ix_jobs_status_created)."""
    return (
        select(Job.id, Job.type, Job.created_at)
        .where(Job.status == Status.PENDING, Job.created_at < cutoff)
        .order_by(Job.created_at)
        .limit(limit)
    )


def cancelled_scan(cutoff: datetime, limit: int) -> Select:
    """Cancelled jobs that still hold a lease, last heartbeat before `cutoff` (ix_jobs_cancelled_held,
    whose predicate the status written into the text matches; releasing the lease takes a job out)."""
    return (
        select(Job.id, Job.type, Job.worker_id, Job.heartbeat_at, Job.finished_at)
        .where(status_is(Job.status, Status.CANCELLED), Job.lease_token.is_not(None), Job.heartbeat_at < cutoff)
        .order_by(Job.heartbeat_at)
        .limit(limit)
    )


def retention_scan(status: str, cutoff: datetime, limit: int) -> Select:
    """What `jobs.prune_finished` deletes in one batch (ix_jobs_status_finished); shown for EXPLAIN."""
    return select(Job.id).where(Job.status == status, Job.finished_at < cutoff).order_by(Job.finished_at).limit(limit)


def worker_scan(cutoff: datetime, limit: int) -> Select:
    """Alive workers last seen before `cutoff` (ix_workers_last_seen)."""
    return (
        select(Worker.id, Worker.last_seen_at)
        .where(Worker.last_seen_at < cutoff, Worker.state == WorkerState.ALIVE)
        .order_by(Worker.last_seen_at)
        .limit(limit)
    )


def scans(now: datetime | None = None) -> dict[str, Select]:
    """Every scan a pass runs, with this deployment's cut-offs."""
    now = now or utcnow()
    s = monitor_settings()
    return {
        "live": live_scan(now - timedelta(seconds=s["min_timeout"] / 2), s["max_per_kind"]),
        "unstarted": unstarted_scan(now - timedelta(seconds=s["min_timeout"]), s["max_per_kind"]),
        "pending": pending_scan(now - timedelta(seconds=s["pending_timeout"]), s["max_per_kind"]),
        "cancelled": cancelled_scan(now - timedelta(seconds=s["min_timeout"]), s["max_per_kind"]),
        "workers": worker_scan(now - timedelta(seconds=s["default_timeout"]), s["max_per_kind"]),
        **{
            f"retention_{status}": retention_scan(status, now - s["retention"], s["batch_size"])
            for status in PRUNED_STATUSES
        },
    }


def age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 3)


def classify_live(rows, now: datetime) -> tuple[list, list]:
    """Split live rows into (orphaned, late) by each job's own timeout."""
    orphaned, late = [], []
    for row in rows:
        age = (now - row.heartbeat_at).total_seconds()
        timeout = jobs.heartbeat_timeout(row)
        if age > timeout:
            orphaned.append((row, timeout))
        elif age > timeout / 2:
            late.append((row, timeout))
    return orphaned, late


def unstarted_overdue(rows, now: datetime) -> list:
    return [
        (row, timeout)
        for row in rows
        if (now - row.claimed_at).total_seconds() > (timeout := jobs.heartbeat_timeout(row))
    ]


def orphan_reason(row) -> str:
    return f"{ORPHANED_PREFIX}no heartbeat from worker {row.worker_id} since {isoformat(row.heartbeat_at)}"


def unstarted_reason(row) -> str:
    return f"{ORPHANED_PREFIX}claimed by worker {row.worker_id} at {isoformat(row.claimed_at)} and never started"


def pending_reason(row) -> str:
    return f"stuck in pending since {isoformat(row.created_at)}"
