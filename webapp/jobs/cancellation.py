"""A worker confirms that it stopped a cancelled job.

Cancelling changes the status at once (webapp.store.transitions) and leaves the lease with
the worker, which learns of it from its next call. Once its handler and
commands have stopped, the worker says so here: the lease is released and a
note records who stopped the job. Only a cancellation nobody confirms is left
to the monitor (`jobs.release_unconfirmed_cancellation`), so the monitor's
"never confirmed" note means the worker truly went silent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from ..domain.actors import worker_actor
from ..domain.event_kinds import EventKind
from ..domain.statuses import JobNotFound, LeaseLost, Status, TransitionRefused
from ..domain.timeutil import utcnow
from ..store import transitions
from ..store.extensions import db
from ..store.models import Job, JobAttempt
from ..store.transaction import rows_changed
from . import tail, unit_of_work

CONFIRMED = "cancel_confirmed"  # the note's action


def confirm_stopped(job_id: int, lease_token: str, *, output: str | None = None) -> None:
    """The worker holding `lease_token` stopped the cancelled job: release the lease, note it.

    Not a status change: the job stays cancelled. 409 `lease_lost` when the token
    is no longer the job's (the monitor released it already, or the job ran
    again); 409 when the job was not cancelled.
    """
    now = utcnow()
    with unit_of_work():
        seen = db.session.execute(
            select(Job.status, Job.lease_token, Job.worker_id, Job.attempt).where(Job.id == job_id)
        ).one_or_none()
        if seen is None:
            raise JobNotFound(job_id)
        if seen.lease_token != lease_token:
            raise LeaseLost(job_id, "stopped", seen.status)
        if seen.status != Status.CANCELLED:
            raise TransitionRefused(job_id, "stopped", seen.status)
        if not release_cancelled_lease(
            job_id, lease_token, now, stopped=True
        ):  # the monitor released it between our read and write
            raise LeaseLost(job_id, "stopped", Status.CANCELLED)
        if output is not None and seen.attempt:
            db.session.execute(
                update(JobAttempt)
                .where(JobAttempt.job_id == job_id, JobAttempt.number == seen.attempt)
                .values(output_tail=tail(output))
                .execution_options(synchronize_session=False)
            )
        transitions.record_event(
            job_id,
            kind=EventKind.NOTE,
            actor=worker_actor(seen.worker_id),
            at=now,
            action=CONFIRMED,
            attempt=seen.attempt or None,
            reason=f"worker {seen.worker_id} stopped the cancelled job",
            data={"worker_id": seen.worker_id},
        )


def release_cancelled_lease(job_id: int, lease_token: str, now: datetime, *, stopped: bool) -> bool:
    """Drop the lease a cancelled job holds, if it is still `lease_token`. Not a status change.

    `stopped`: its worker confirmed the process stopped, so the lease's clock goes too and
    the job may run again at once; otherwise (the monitor gave up waiting for the
    confirmation) the job keeps `lease_expires_at` and stays `stopping` until it passes."""
    values: dict[str, object] = {"lease_token": None, "heartbeat_at": None, "updated_at": now}
    if stopped:
        values["lease_expires_at"] = None
    released = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == Status.CANCELLED, Job.lease_token == lease_token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(released) > 0
