"""The health monitor's writes: settle what its scans found stuck, and prune the old.

Each is one compare-and-set whose conditions repeat what the monitor's scan
saw, so a job that moved on meanwhile (a late heartbeat, a start, a second
monitor pass) is refused and left alone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, select, update

from ..domain.actors import MONITOR, SERVER
from ..domain.event_kinds import EventKind
from ..domain.outcomes import ORPHANED_PREFIX, Outcome
from ..domain.statuses import FINISHED, LIVE, Status
from ..domain.timeutil import utcnow
from ..domain.worker_states import WorkerState
from ..store import transitions
from ..store.extensions import db
from ..store.models import Job, Worker
from ..store.transaction import rows_changed, unit_of_work
from .cancellation import release_cancelled_lease
from .policy import end_attempt
from .queries import get_job


def orphan_job(job_id: int, *, cutoff: datetime, reason: str, actor: str = MONITOR) -> Job:
    """The monitor fails a live attempt whose last heartbeat is older than `cutoff`.

    The heartbeat condition is part of the compare-and-set, so a heartbeat that
    arrives meanwhile wins and nothing changes.
    """
    return _orphan(job_id, reason=reason, actor=actor, conditions=[Job.heartbeat_at < cutoff])


def _orphan(job_id: int, *, reason: str, actor: str, conditions: list[ColumnElement[bool]]) -> Job:
    """End the live attempt as orphaned (retried while attempts are left) if `conditions`
    still hold when the compare-and-set runs."""
    job = get_job(job_id)
    with unit_of_work():
        return end_attempt(
            job,
            actor=actor,
            lease_token=None,
            error=reason,
            exit_code=None,
            output=None,
            retryable=True,
            outcome=Outcome.ORPHANED,
            give_back=False,
            conditions=conditions,
        )


def orphan_job_of_dead_worker(job_id: int, worker_id: str, *, actor: str = SERVER) -> Job:
    """The live attempt of a worker whose connection dropped without a goodbye is orphaned now;
    its lease still holds the job back from another worker (webapp.server.presence)."""
    return _orphan(
        job_id,
        reason=f"{ORPHANED_PREFIX}worker {worker_id} died (its connection to the server dropped)",
        actor=actor,
        conditions=[Job.worker_id == worker_id, Job.status.in_(LIVE)],
    )


def orphan_unstarted_job(job_id: int, *, cutoff: datetime, reason: str, actor: str = MONITOR) -> Job:
    """The monitor fails an attempt that was claimed before `cutoff` and never started."""
    return _orphan(
        job_id, reason=reason, actor=actor, conditions=[Job.status == Status.CLAIMED, Job.claimed_at < cutoff]
    )


def fail_stale_pending(job_id: int, *, cutoff: datetime, reason: str, actor: str = MONITOR) -> Job:
    """A job held in pending since before `cutoff` is failed; a release meanwhile wins."""
    now = utcnow()
    with unit_of_work():
        return transitions.transition(
            job_id,
            "fail",
            actor=actor,
            reason=reason,
            conditions=[Job.status == Status.PENDING, Job.created_at < cutoff],
            values={"finished_at": now, "last_error": reason},
            now=now,
        )


def release_stale_pending(job_id: int, *, cutoff: datetime, reason: str, actor: str = MONITOR) -> Job:
    """A job held in pending since before `cutoff` is queued (JOBWARDEN_PENDING_ACTION=queue)."""
    now = utcnow()
    with unit_of_work():
        return transitions.transition(
            job_id,
            "force_start",
            actor=actor,
            reason=reason,
            conditions=[Job.status == Status.PENDING, Job.created_at < cutoff],
            values={"run_after": now},
            now=now,
        )


def release_unconfirmed_cancellation(job_id: int, *, cutoff: datetime, actor: str = MONITOR) -> bool:
    """Drop the lease a cancelled job still holds when its worker never confirmed by `cutoff`.

    Not a status change: the job stays cancelled. The worker's last heartbeat
    moves into the note event, so the job leaves the monitor's heartbeat scan.
    Returns False when there was nothing (left) to release.
    """
    now = utcnow()
    with unit_of_work():
        seen = db.session.execute(
            select(Job.lease_token, Job.worker_id, Job.heartbeat_at, Job.attempt).where(
                Job.id == job_id,
                Job.status == Status.CANCELLED,
                Job.lease_token.is_not(None),
                Job.finished_at < cutoff,
            )
        ).one_or_none()
        if seen is None:
            return False
        if not release_cancelled_lease(job_id, seen.lease_token, now, stopped=False):
            return False
        transitions.record_event(
            job_id,
            kind=EventKind.NOTE,
            actor=actor,
            at=now,
            action="cancel_unconfirmed",
            attempt=seen.attempt or None,
            reason=f"worker {seen.worker_id} never confirmed the cancellation",
            data={
                "worker_id": seen.worker_id,
                "last_heartbeat_at": seen.heartbeat_at.isoformat() if seen.heartbeat_at else None,
            },
        )
    return True


def mark_worker_gone(worker_id: str, *, cutoff: datetime) -> bool:
    """An alive worker last seen before `cutoff` is marked gone; a heartbeat meanwhile wins."""
    with unit_of_work():
        return bool(
            rows_changed(
                db.session.execute(
                    update(Worker)
                    .where(Worker.id == worker_id, Worker.state == WorkerState.ALIVE, Worker.last_seen_at < cutoff)
                    .values(state=WorkerState.GONE)
                    .execution_options(synchronize_session=False)
                )
            )
        )


def prune_finished(status: str, *, cutoff: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` jobs in `status` that finished before `cutoff`, oldest first.

    Their events and attempts go with them (ON DELETE CASCADE). One transaction
    per batch, so a big backlog never holds the write lock for long.
    """
    if status not in FINISHED:
        raise ValueError(f"only finished jobs are pruned, not {status}")
    batch = (
        select(Job.id).where(Job.status == status, Job.finished_at < cutoff).order_by(Job.finished_at).limit(batch_size)
    )
    with unit_of_work():
        return rows_changed(
            db.session.execute(
                delete(Job).where(Job.id.in_(batch.scalar_subquery())).execution_options(synchronize_session=False)
            )
        )
