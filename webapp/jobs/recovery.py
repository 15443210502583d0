"""The operator's recovery commands on one job: run now, cancel, mark failed, force start, resume, restart."""

from __future__ import annotations

from sqlalchemy import case

from ..domain.actors import OPERATOR
from ..domain.outcomes import Outcome
from ..domain.timeutil import utcnow
from ..store import transitions
from ..store.models import Job
from ..store.transaction import unit_of_work
from . import steps


def run_now(job_id: int, *, actor: str = OPERATOR, reason: str | None = None) -> Job:
    """A queued job waiting for its run_after becomes due now; the claim's other rules (a
    paused queue, its limits, an earlier attempt's lease) still hold it. One already due is
    refused, so a second click changes nothing."""
    now = utcnow()
    with unit_of_work():
        return transitions.transition(
            job_id,
            "run_now",
            actor=actor,
            reason=reason or "run now",
            values={"run_after": now},
            # The status does not change, so it cannot tell two clicks apart: a click whose clock
            # was read before the first one's (and whose statement waited for its row) would still
            # find the job's new run_after ahead of it. It also finds the job changed since its clock.
            conditions=(Job.run_after > now, Job.updated_at <= now),
            now=now,
        )


def cancel_job(job_id: int, *, actor: str = OPERATOR, reason: str | None = None) -> Job:
    """Cancel now; a live worker learns from its next heartbeat (lease_lost) and stops."""
    now = utcnow()
    with unit_of_work():
        return transitions.transition(
            job_id,
            "cancel",
            actor=actor,
            reason=reason or "cancelled by user",
            values={"cancel_requested": True, "finished_at": now},
            attempt_values={"finished_at": now, "outcome": Outcome.CANCELLED, "error": reason or "cancelled by user"},
            now=now,
        )


def mark_failed(job_id: int, *, actor: str = OPERATOR, reason: str | None = None) -> Job:
    now = utcnow()
    message = reason or "marked as failed by operator"
    with unit_of_work():
        return transitions.transition(
            job_id,
            "fail",
            actor=actor,
            reason=message,
            values={"finished_at": now, "last_error": message},
            attempt_values={"finished_at": now, "outcome": Outcome.MARKED_FAILED, "error": message},
            now=now,
        )


def force_start(job_id: int, *, actor: str = OPERATOR, reason: str | None = None) -> Job:
    """Pending → queued; failed or cancelled → queued with one more attempt (completed steps replay)."""
    return _requeue(job_id, "force_start", actor=actor, reason=reason or "force-started")


def resume_job(job_id: int, *, actor: str = OPERATOR, reason: str | None = None) -> Job:
    """Failed or cancelled → queued with one more attempt, keeping the completed steps' results."""
    return _requeue(job_id, "resume", actor=actor, reason=reason or "resumed from the first step not completed")


def restart_job(job_id: int, *, actor: str = OPERATOR, reason: str | None = None) -> Job:
    """Failed or cancelled → queued with one more attempt; stored step results and the
    checkpoint are discarded in the same transaction, so every step runs again."""
    return _requeue(job_id, "restart", actor=actor, reason=reason or "restarted from scratch", discard=True)


def _requeue(job_id: int, action: str, *, actor: str, reason: str, discard: bool = False) -> Job:
    """An operator's move back to queued: a fresh lease, due now, one more attempt allowed."""
    now = utcnow()
    with unit_of_work():
        job = transitions.transition(
            job_id,
            action,
            actor=actor,
            reason=reason,
            values={
                "run_after": now,
                "lease_token": None,
                "worker_id": None,
                "finished_at": None,
                "cancel_requested": False,
                "heartbeat_at": None,
                "max_attempts": case((Job.max_attempts < Job.attempt + 1, Job.attempt + 1), else_=Job.max_attempts),
            },
            now=now,
        )
        if discard:
            steps.discard(job_id)
    return job
