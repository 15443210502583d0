"""Durable steps on the server: the stored step results and the newest checkpoint
of each job, read for the claim and the job page and written inside the callers'
transactions (a step's result with its `completed` event, a checkpoint with its
heartbeat, a restart's discard with its transition)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, insert, select, update

from ..domain.timeutil import isoformat
from ..store.extensions import db
from ..store.models import Checkpoint, JobRow, StepResult

NO_RESULT: Any = object()  # a step event that stores no result (`None` is a result)


def store_result(job_id: int, *, name: str, attempt: int, result: Any, at: datetime) -> None:
    """Keep `result` as step `name`'s; a result stored earlier under the name is replaced."""
    db.session.execute(delete(StepResult).where(StepResult.job_id == job_id, StepResult.name == name))
    db.session.execute(
        insert(StepResult).values(job_id=job_id, name=name, attempt=attempt, result=result, completed_at=at)
    )


def save_checkpoint(job_id: int, *, attempt: int, step: str | None, data: Any, at: datetime) -> None:
    """Replace the job's checkpoint with a newer one (one row per job)."""
    values = {"attempt": attempt, "step": step, "data": data, "at": at}
    updated: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]  # an UPDATE's result
        update(Checkpoint)
        .where(Checkpoint.job_id == job_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    changed = updated.rowcount
    if not changed:
        db.session.execute(insert(Checkpoint).values(job_id=job_id, **values))


def discard(job_id: int) -> None:
    """Forget the job's stored step results and checkpoint (a restart from scratch)."""
    db.session.execute(delete(StepResult).where(StepResult.job_id == job_id))
    db.session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))


def results_of(job_id: int) -> dict[str, StepResult]:
    """The job's stored step results by step name."""
    rows = db.session.scalars(select(StepResult).where(StepResult.job_id == job_id).order_by(StepResult.id))
    return {row.name: row for row in rows}


def stored_names(job_id: int) -> list[str]:
    """Names of the job's steps that have a stored result."""
    return list(db.session.scalars(select(StepResult.name).where(StepResult.job_id == job_id)))


def checkpoint_of(job_id: int) -> Checkpoint | None:
    return db.session.get(Checkpoint, job_id)


def checkpoint_json(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {
        "at": isoformat(checkpoint.at),
        "step": checkpoint.step,
        "attempt": checkpoint.attempt,
        "data": checkpoint.data,
    }


def replay_state(claimed: Iterable[JobRow]) -> dict[int, dict[str, Any]]:
    """What claimed jobs need to skip completed steps and resume from their checkpoint:
    per job `step_results` ({name: {"result", "attempt"}}) and `checkpoint`. Two queries per
    claim, none for jobs in their first attempt: step results and checkpoints are written under
    a lease, and a job's first lease is the claim that just made its first attempt."""
    jobs = list(claimed)
    state: dict[int, dict[str, Any]] = {job.id: {"step_results": {}, "checkpoint": None} for job in jobs}
    ids = [job.id for job in jobs if job.attempt > 1]
    if not ids:
        return state
    for row in db.session.scalars(select(StepResult).where(StepResult.job_id.in_(ids))):
        state[row.job_id]["step_results"][row.name] = {"result": row.result, "attempt": row.attempt}
    for checkpoint in db.session.scalars(select(Checkpoint).where(Checkpoint.job_id.in_(ids))):
        state[checkpoint.job_id]["checkpoint"] = checkpoint_json(checkpoint)
    return state


def first_step_to_run(steps: list[dict[str, Any]], stored: Iterable[str]) -> str | None:
    """The first step of the latest attempt without a stored result: where a resume picks up."""
    if not steps:
        return None
    latest = max(step["attempt"] or 0 for step in steps)
    done = set(stored)
    for step in steps:
        if step["attempt"] == latest and step["name"] not in done:
            return step["name"]
    return None
