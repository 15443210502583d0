"""One operator action on many jobs, each job its own compare-and-set."""

from __future__ import annotations

from typing import Any

from .. import actions, states
from ..states import JobNotFound


def apply_action(action: str, ids: list[int], *, actor: str, reason: str | None = None) -> dict[str, Any]:
    """One operator action on many jobs, each its own compare-and-set.

    A job that moved on (or never existed) is skipped with why; the others change.
    """
    command = actions.action_named(action).command
    changed, skipped = 0, []
    for job_id in dict.fromkeys(ids):
        try:
            command(job_id, actor=actor, reason=reason)
            changed += 1
        except JobNotFound:
            skipped.append({"id": job_id, "status": None, "reason": "not found"})
        except states.TransitionRefused as refused:
            skipped.append(
                {"id": job_id, "status": refused.status, "reason": f"already {refused.status} — nothing was done"}
            )
    return {"changed": changed, "skipped": skipped}
