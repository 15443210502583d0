"""What each recovery action will do to this job and its steps, in one line: the words
the job page's recovery card shows under each button and its confirmation repeats.

Words made per job, because what an action does depends on the job: Force start and
Resume do the same to a job with completed steps (both keep the stored results, which
are replayed instead of run again — see jobs/recovery.py), Restart discards them, and
Cancel and Mark as failed keep them for a later Resume. A line names the steps, so two
buttons that act alike say they are alike and the one that differs says how. The
generic words (bulk actions, the API) stay in webapp/domain/actions.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...domain.actions import Action
from ...domain.statuses import LIVE, Status
from ...store.models import Job


@dataclass(frozen=True)
class StepsOnRecord:
    kept: list[str]  # steps with a stored result, in the order they first ran
    resume_at: str | None  # the first step of the latest attempt without a stored result
    checkpoint: bool  # a checkpoint is stored


def steps_on_record(
    job_steps: list[dict[str, Any]], stored: Iterable[str], resume_at: str | None, checkpoint: bool
) -> StepsOnRecord:
    stored_set = set(stored)
    kept = list(dict.fromkeys(step["name"] for step in job_steps if step["name"] in stored_set))
    return StepsOnRecord(kept=kept, resume_at=resume_at, checkpoint=checkpoint)


def listed(names: list[str]) -> str:
    """ "fetch", "fetch and convert", "fetch, convert and publish"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _replayed(record: StepsOnRecord) -> str:
    verb = "is" if len(record.kept) == 1 else "are"
    where = f"it runs from step {record.resume_at}" if record.resume_at else "the steps after them run"
    return f"{listed(record.kept)} {verb} replayed from stored results, not run again; {where}"


def _requeued(action: Action, record: StepsOnRecord) -> str:
    head = "Queues it again with one more attempt"
    if record.kept:
        line = f"{head}: {_replayed(record)}."
    elif record.checkpoint:
        line = f"{head}: no step completed; the handler starts from its last checkpoint."
    else:
        return f"{head}: no step completed, so it runs from the start."
    return f"{line} The same as Resume." if action.name == "force-start" else line


def _restarted(record: StepsOnRecord) -> str:
    discarded = [f"the stored results of {listed(record.kept)}"] if record.kept else []
    if record.checkpoint:
        discarded.append("the checkpoint")
    if not discarded:
        return "Queues it again with one more attempt: it runs from the start."
    return f"Queues it again with one more attempt and discards {' and '.join(discarded)}: every step runs again."


def _ended(job: Job, record: StepsOnRecord, *, as_what: str, stops: str) -> str:
    parts = [f"Ends it as {as_what}, with no retry"]
    if job.status in LIVE:
        parts.append(stops)
    if record.kept:
        verb = "is" if len(record.kept) == 1 else "are"
        parts.append(f"{listed(record.kept)} {verb} kept for a later Resume")
    return "; ".join(parts) + "."


def effect(action: Action, job: Job, record: StepsOnRecord) -> str:
    """One line: what `action` does to `job` and its steps."""
    if action.name == "force-start" and job.status == Status.PENDING:
        return "Releases it to the workers now; it has not run yet."
    if action.name in ("force-start", "resume"):
        return _requeued(action, record)
    if action.name == "restart":
        return _restarted(record)
    if action.name == "mark-failed":
        return _ended(job, record, as_what="failed", stops="the worker running it is told to stop")
    if action.name == "cancel":
        return _ended(
            job,
            record,
            as_what="cancelled",
            stops="a running command gets SIGTERM to its process group, then SIGKILL after the grace period",
        )
    return action.consequence


def effects(actions: list[Action], job: Job, record: StepsOnRecord) -> dict[str, str]:
    return {action.name: effect(action, job, record) for action in actions}
