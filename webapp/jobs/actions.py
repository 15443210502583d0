"""What each operator recovery action does to a job (`COMMANDS`, one per action of
webapp.domain.actions), and one action on many jobs (`apply_action`): the JSON API's
routes, the dashboard's buttons and bulk form all run them from here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..domain.actions import Action
from ..domain.statuses import JobNotFound, TransitionRefused
from ..store.models import Job
from .recovery import cancel_job, force_start, mark_failed, restart_job, resume_job, run_now

# (job_id, *, actor, reason) → the job, or TransitionRefused; keyed by the action's name.
COMMANDS: dict[str, Callable[..., Job]] = {
    "run-now": run_now,
    "force-start": force_start,
    "mark-failed": mark_failed,
    "cancel": cancel_job,
    "resume": resume_job,
    "restart": restart_job,
}


def run_action(action: Action, job_id: int, *, actor: str, reason: str | None = None) -> Job:
    """One recovery action on one job: the job as it is now, or TransitionRefused with its
    current status."""
    return COMMANDS[action.name](job_id, actor=actor, reason=reason)


def apply_action(action: str, ids: list[int], *, actor: str, reason: str | None = None) -> dict[str, Any]:
    """One operator action on many jobs, each its own compare-and-set.

    A job that moved on (or never existed) is skipped with why; the others change.
    """
    command = COMMANDS[action]
    changed, skipped = 0, []
    for job_id in dict.fromkeys(ids):
        try:
            command(job_id, actor=actor, reason=reason)
            changed += 1
        except JobNotFound:
            skipped.append({"id": job_id, "status": None, "reason": "not found"})
        except TransitionRefused as refused:
            skipped.append(
                {"id": job_id, "status": refused.status, "reason": f"already {refused.status} — nothing was done"}
            )
    return {"changed": changed, "skipped": skipped}


def bulk_audit(ids: list[int], result: dict[str, Any]) -> dict[str, Any]:
    """What a bulk action's audit entry keeps: the ids asked for, how many changed, which were skipped."""
    return {"ids": ids, "changed": result["changed"], "skipped": [s["id"] for s in result["skipped"]]}
