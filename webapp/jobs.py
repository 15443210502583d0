"""Queries and commands on jobs: what the API, the dashboard, the worker API and
the monitor call. Status changes go through `webapp.states`; each command here
is one transaction, committed on success and rolled back on refusal.
"""
from __future__ import annotations

import base64
import binascii
import json
import random
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from flask import current_app
from sqlalchemy import case, delete, func, or_, select, tuple_, union_all, update
from sqlalchemy.exc import IntegrityError

from . import states, steps
from .extensions import db
from .models import Job, JobAttempt, JobEvent, Worker
from .states import LIVE, JobNotFound, Status
from .timeutil import utcnow

OUTPUT_TAIL_BYTES = 64 * 1024
SORT_COLUMNS = {
    "id": Job.id,
    "created_at": Job.created_at,
    "updated_at": Job.updated_at,
    "priority": Job.priority,
    "type": Job.type,
    "status": Job.status,
}


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit what the block did, or roll all of it back if it raised."""
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def tail(text: str | None, limit: int = OUTPUT_TAIL_BYTES) -> str | None:
    """The last `limit` bytes of `text`, cut on a character boundary."""
    if text is None:
        return None
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", "ignore")


def retry_delay(attempt: int) -> float:
    """Exponential backoff with ±25 % jitter, capped: base·2^(attempt−1)."""
    base = current_app.config["JOBWARDEN_RETRY_BASE_S"]
    cap = current_app.config["JOBWARDEN_RETRY_MAX_S"]
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.75, 1.25)


def timeout_for(job: Job) -> float:
    """Seconds without a heartbeat after which a live job counts as orphaned."""
    per_type = current_app.config["JOBWARDEN_TYPE_TIMEOUTS"]
    return float(per_type.get(job.type, current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"]))


# --- queries ---------------------------------------------------------------


def get_job(job_id: int) -> Job:
    job = db.session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def queue_position(job: Job) -> int | None:
    """1-based place in the claim order, for queued jobs only."""
    if job.status != Status.QUEUED:
        return None
    ahead = db.session.execute(
        select(func.count())
        .select_from(Job)
        .where(
            Job.status == Status.QUEUED,
            or_(Job.priority > job.priority, (Job.priority == job.priority) & (Job.id < job.id)),
        )
    ).scalar_one()
    return ahead + 1


def attempts_of(job_id: int) -> list[JobAttempt]:
    return list(
        db.session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
        )
    )


def events_of(job_id: int) -> list[JobEvent]:
    return list(
        db.session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
    )


def steps_of(job_id: int) -> list[dict[str, Any]]:
    """Each (attempt, step) once, in the order started, with its latest state."""
    steps: dict[tuple[int | None, str], dict[str, Any]] = {}
    for event in db.session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "step").order_by(JobEvent.id)
    ):
        data = event.data or {}
        key = (event.attempt, data.get("name"))
        step = steps.setdefault(
            key,
            {"name": data.get("name"), "attempt": event.attempt, "status": None,
             "started_at": None, "finished_at": None, "phase": None, "error": None,
             "result_attempt": None, "step_attempt": None},
        )
        step["status"] = data.get("event")
        if data.get("event") == "started":
            step["started_at"] = event.at
        elif data.get("event") != "retrying":
            step["finished_at"] = event.at
        step["result_attempt"] = data.get("result_attempt") or step["result_attempt"]
        step["step_attempt"] = data.get("step_attempt") or step["step_attempt"]
        step["phase"] = data.get("phase") or step["phase"]
        step["error"] = data.get("error") or step["error"]
    return list(steps.values())


class BadQuery(ValueError):
    """A list parameter cannot be used; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass
class JobFilter:
    statuses: list[str] = field(default_factory=list)
    type: str | None = None
    worker: str | None = None
    q: str | None = None

    def conditions(self) -> list:
        conditions = []
        if self.statuses:
            conditions.append(Job.status.in_(self.statuses))
        if self.type:
            conditions.append(Job.type == self.type)
        if self.worker:
            conditions.append(Job.worker_id == self.worker)
        if self.q:
            text = self.q.strip()
            matches = [
                Job.type.contains(text, autoescape=True),
                Job.last_error.contains(text, autoescape=True),
            ]
            if text.isdigit() and len(text) < 19:
                matches.append(Job.id == int(text))
            conditions.append(or_(*matches))
        return conditions


def encode_cursor(value: Any, job_id: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    raw = json.dumps([value, job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, job_id = json.loads(raw)
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["t"])
        if not isinstance(job_id, int):
            raise ValueError
        return value, job_id
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise BadQuery("cursor", "cursor is not one this server issued") from None


def list_jobs(
    job_filter: JobFilter,
    *,
    sort: str = "id",
    order: str = "desc",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Job], str | None]:
    """One keyset page of jobs and the cursor of the next page (None at the end)."""
    if sort not in SORT_COLUMNS:
        raise BadQuery("sort", f"sort must be one of {', '.join(SORT_COLUMNS)}")
    if order not in ("asc", "desc"):
        raise BadQuery("order", "order must be asc or desc")
    column = SORT_COLUMNS[sort]
    after = []
    if cursor:
        value, after_id = decode_cursor(cursor)
        key = tuple_(column, Job.id) if sort != "id" else Job.id
        bound = tuple_(value, after_id) if sort != "id" else after_id
        after.append(key < bound if order == "desc" else key > bound)
    if sort == "id":
        ordering = [Job.id.desc() if order == "desc" else Job.id.asc()]
    elif order == "desc":
        ordering = [column.desc(), Job.id.desc()]
    else:
        ordering = [column.asc(), Job.id.asc()]
    if len(job_filter.statuses) > 1:
        # An IN list of statuses cannot be read in order from the (status, …) indexes, so
        # both databases walk the table in id order, through every row, when the ticked
        # statuses are rare. The page is instead taken from each status's own top rows.
        tops = []
        for status in job_filter.statuses:
            one = replace(job_filter, statuses=[status])
            top = select(Job.id).where(*one.conditions(), *after).order_by(*ordering).limit(limit + 1).subquery()
            tops.append(select(top.c.id))
        statement = select(Job).where(Job.id.in_(union_all(*tops)))
    else:
        statement = select(Job).where(*job_filter.conditions(), *after)
    rows = list(db.session.scalars(statement.order_by(*ordering).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, column.key), last.id)
    return rows, next_cursor


def count_by_status(job_filter: JobFilter | None = None, cap: int | None = None) -> dict[str, int]:
    """Jobs per status; with `cap`, each count stops at cap + 1 (shown as "cap+")."""
    counts = {}
    base_conditions = (job_filter or JobFilter()).conditions()
    for status in Status:
        inner = select(Job.id).where(Job.status == status, *base_conditions)
        if cap is not None:
            inner = inner.limit(cap + 1)
        counts[str(status)] = db.session.execute(
            select(func.count()).select_from(inner.subquery())
        ).scalar_one()
    return counts


# --- commands ----------------------------------------------------------------


def create_jobs(specs: list[dict[str, Any]], *, actor: str = "api") -> list[Job]:
    """Create jobs all or nothing, in one transaction."""
    default_attempts = current_app.config["JOBWARDEN_DEFAULT_MAX_ATTEMPTS"]
    prepared = []
    for spec in specs:
        spec = dict(spec)
        if spec.get("max_attempts") is None:
            spec["max_attempts"] = default_attempts
        prepared.append(spec)
    with unit_of_work():
        return states.create(prepared, actor=actor)


def create_job(*, actor: str = "api", **spec: Any) -> Job:
    return create_jobs([spec], actor=actor)[0]


def claim_jobs(worker_id: str, *, types: list[str] | None = None, batch_size: int = 1) -> list[Job]:
    with unit_of_work():
        claimed = states.claim(worker_id, types=types, batch_size=batch_size)
        # Handed back detached, as RETURNING gave them: the commit would expire them
        # and reading a claimed job would then cost one query per job.
        for job in claimed:
            db.session.expunge(job)
    return claimed


def start_job(job_id: int, lease_token: str) -> Job:
    now = utcnow()
    with unit_of_work():
        job = states.transition(
            job_id, "start", actor=states.lease_holder, lease_token=lease_token,
            values={"started_at": now, "heartbeat_at": now},
            attempt_values={"started_at": now}, now=now,
        )
    return job


def heartbeat(
    job_id: int,
    lease_token: str,
    *,
    progress: float | None = None,
    stage: str | None = None,
    current_step: str | None = None,
    output: str | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> Job:
    """Keep a live job's lease alive and record its progress (and its newest checkpoint).

    Fields left out keep their values (a heartbeat naming no step keeps the step).
    Not a status change, but fenced like one: a dead token changes nothing.
    """
    now = utcnow()
    values: dict[str, Any] = {"heartbeat_at": now, "updated_at": now}
    if progress is not None:
        values["progress"] = progress
    if stage is not None:
        values["stage"] = stage
    if current_step is not None:
        values["current_step"] = current_step
    with unit_of_work():
        job = db.session.scalars(
            update(Job)
            .where(Job.id == job_id, Job.lease_token == lease_token, Job.status.in_(LIVE))
            .values(**values)
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)
        ).one_or_none()
        if job is None:
            raise states._why_refused(job_id, states.EDGES["start"], lease_token)
        if output is not None:
            _set_attempt(job, output_tail=tail(output))
        if checkpoint is not None:
            steps.save_checkpoint(job_id, attempt=job.attempt, step=checkpoint.get("step"),
                                  data=checkpoint.get("data"), at=now)
    return job


def record_step(
    job_id: int,
    lease_token: str,
    *,
    name: str,
    event: str,
    attempt: int | None = None,
    phase: str | None = None,
    error: str | None = None,
    result: Any = steps.NO_RESULT,
    result_attempt: int | None = None,
    step_attempt: int | None = None,
) -> Job:
    """A step started, completed, failed, is retrying or was replayed; a started step
    becomes the current step. A completed step's `result`, when given, is stored in the
    same transaction as its event, so a later attempt replays it."""
    now = utcnow()
    values: dict[str, Any] = {"heartbeat_at": now, "updated_at": now}
    if event == "started":
        values["current_step"] = name
    with unit_of_work():
        job = db.session.scalars(
            update(Job)
            .where(Job.id == job_id, Job.lease_token == lease_token, Job.status.in_(LIVE))
            .values(**values)
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)
        ).one_or_none()
        if job is None:
            raise states._why_refused(job_id, states.EDGES["start"], lease_token)
        data: dict[str, Any] = {"name": name, "event": event, "phase": phase, "error": error}
        if event == "completed" and result is not steps.NO_RESULT:
            steps.store_result(job_id, name=name, attempt=job.attempt, result=result, at=now)
            data["result_attempt"] = job.attempt
        elif result_attempt is not None:
            data["result_attempt"] = result_attempt
        if step_attempt is not None:
            data["step_attempt"] = step_attempt
        states.record_event(
            job_id, kind="step", actor=f"worker:{job.worker_id}", at=now,
            attempt=attempt or job.attempt, reason=error, data=data,
        )
    return job


def complete_job(
    job_id: int,
    lease_token: str,
    *,
    result: Any = None,
    exit_code: int | None = 0,
    output: str | None = None,
) -> Job:
    now = utcnow()
    with unit_of_work():
        return states.transition(
            job_id, "complete", actor=states.lease_holder, lease_token=lease_token,
            values={"finished_at": now, "result": result, "exit_code": exit_code,
                    "progress": 100, "lease_token": None},
            attempt_values={"finished_at": now, "outcome": "completed", "exit_code": exit_code,
                            **({"output_tail": tail(output)} if output is not None else {})},
            now=now,
        )


def fail_job(
    job_id: int,
    lease_token: str,
    *,
    error: str,
    exit_code: int | None = None,
    output: str | None = None,
    retryable: bool = True,
    interrupted: bool = False,
) -> Job:
    """A worker reports its attempt failed (or was interrupted by a shutdown).

    Retryable failures with attempts left go back to queued with backoff; an
    interrupted attempt is handed back at once and does not use up an attempt.
    """
    job = get_job(job_id)
    with unit_of_work():
        return _end_attempt(
            job, actor=_lease_holder(job), lease_token=lease_token, error=error,
            exit_code=exit_code, output=output, retryable=retryable,
            outcome="interrupted" if interrupted else "failed", give_back=interrupted,
        )


def orphan_job(job_id: int, *, cutoff: datetime, reason: str, actor: str = "monitor") -> Job:
    """The monitor fails a live attempt whose last heartbeat is older than `cutoff`.

    The heartbeat condition is part of the compare-and-set, so a heartbeat that
    arrives meanwhile wins and nothing changes.
    """
    job = get_job(job_id)
    with unit_of_work():
        return _end_attempt(
            job, actor=actor, lease_token=None, error=reason, exit_code=None, output=None,
            retryable=True, outcome="orphaned", give_back=False,
            conditions=[Job.heartbeat_at < cutoff],
        )


def _end_attempt(
    job: Job,
    *,
    actor: str,
    lease_token: str | None,
    error: str,
    exit_code: int | None,
    output: str | None,
    retryable: bool,
    outcome: str,
    give_back: bool,
    conditions: list | None = None,
) -> Job:
    """Close the current attempt and apply the retry policy in one transition."""
    now = utcnow()
    attempts_left = job.attempt < job.max_attempts
    attempt_values = {
        "finished_at": now, "outcome": outcome, "error": error,
        "exit_code": exit_code, "step": job.current_step,
        **({"output_tail": tail(output)} if output is not None else {}),
    }
    common = dict(
        actor=actor, reason=error, lease_token=lease_token, conditions=conditions or (),
        attempt_values=attempt_values, now=now,
        # The retry decision read `attempt`; it must still hold when we write.
        event_data={"step": job.current_step, "exit_code": exit_code, "outcome": outcome},
    )
    common["conditions"] = [*common["conditions"], Job.attempt == job.attempt]
    if give_back or (retryable and attempts_left):
        delay = 0.0 if give_back else retry_delay(job.attempt)
        values = {
            "run_after": now + timedelta(seconds=delay), "lease_token": None, "worker_id": None,
            "last_error": error, "exit_code": exit_code, "heartbeat_at": None,
        }
        if give_back:
            values["max_attempts"] = case(
                (Job.max_attempts < Job.attempt + 1, Job.attempt + 1), else_=Job.max_attempts
            )
        return states.transition(job.id, "retry", values=values, **common)
    return states.transition(
        job.id, "fail",
        values={"finished_at": now, "last_error": error, "exit_code": exit_code},
        **common,
    )


def cancel_job(job_id: int, *, actor: str = "operator", reason: str | None = None) -> Job:
    """Cancel now; a live worker learns from its next heartbeat (lease_lost) and stops."""
    now = utcnow()
    with unit_of_work():
        return states.transition(
            job_id, "cancel", actor=actor, reason=reason or "cancelled by user",
            values={"cancel_requested": True, "finished_at": now},
            attempt_values={"finished_at": now, "outcome": "cancelled", "error": reason or "cancelled by user"},
            now=now,
        )


def mark_failed(job_id: int, *, actor: str = "operator", reason: str | None = None) -> Job:
    now = utcnow()
    message = reason or "marked as failed by operator"
    with unit_of_work():
        return states.transition(
            job_id, "fail", actor=actor, reason=message,
            values={"finished_at": now, "last_error": message},
            attempt_values={"finished_at": now, "outcome": "marked_failed", "error": message},
            now=now,
        )


def force_start(job_id: int, *, actor: str = "operator", reason: str | None = None) -> Job:
    """Pending → queued; failed or cancelled → queued with one more attempt."""
    now = utcnow()
    with unit_of_work():
        return states.transition(
            job_id, "force_start", actor=actor, reason=reason or "force-started",
            values={
                "run_after": now, "lease_token": None, "worker_id": None, "finished_at": None,
                "cancel_requested": False, "heartbeat_at": None,
                "max_attempts": case(
                    (Job.max_attempts < Job.attempt + 1, Job.attempt + 1), else_=Job.max_attempts
                ),
            },
            now=now,
        )


def resume_job(job_id: int, *, actor: str = "operator", reason: str | None = None) -> Job:
    """Failed or cancelled → queued with one more attempt, keeping the completed steps' results."""
    return _recover(job_id, "resume", actor=actor, reason=reason or "resumed from the first step not completed")


def restart_job(job_id: int, *, actor: str = "operator", reason: str | None = None) -> Job:
    """Failed or cancelled → queued with one more attempt; stored step results and the
    checkpoint are discarded in the same transaction, so every step runs again."""
    return _recover(job_id, "restart", actor=actor, reason=reason or "restarted from scratch", discard=True)


def _recover(job_id: int, action: str, *, actor: str, reason: str, discard: bool = False) -> Job:
    now = utcnow()
    with unit_of_work():
        job = states.transition(
            job_id, action, actor=actor, reason=reason,
            values={
                "run_after": now, "lease_token": None, "worker_id": None, "finished_at": None,
                "cancel_requested": False, "heartbeat_at": None,
                "max_attempts": case(
                    (Job.max_attempts < Job.attempt + 1, Job.attempt + 1), else_=Job.max_attempts
                ),
            },
            now=now,
        )
        if discard:
            steps.discard(job_id)
    return job


def register_worker(
    worker_id: str,
    *,
    hostname: str | None = None,
    pid: int | None = None,
    types: list[str] | None = None,
    concurrency: int | None = None,
) -> Worker:
    fields = dict(hostname=hostname, pid=pid, types=types, concurrency=concurrency)
    try:
        return _save_worker(worker_id, **fields)
    except IntegrityError:
        # Two first heartbeats of one worker raced to insert it: the loser updates instead.
        return _save_worker(worker_id, **fields)


def _save_worker(worker_id: str, **fields: Any) -> Worker:
    now = utcnow()
    with unit_of_work():
        worker = db.session.get(Worker, worker_id)
        if worker is None:
            worker = Worker(id=worker_id, started_at=now)
            db.session.add(worker)
        for name, value in fields.items():
            setattr(worker, name, value)
        worker.last_seen_at = now
        worker.state = "alive"
    return worker


def _set_attempt(job: Job, **values: Any) -> None:
    db.session.execute(
        update(JobAttempt)
        .where(JobAttempt.job_id == job.id, JobAttempt.number == job.attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def _lease_holder(job: Job) -> str:
    """`states.lease_holder` read before the command: a failure's retry clears the
    row's worker in the same UPDATE, so the name must come from the row as it was."""
    return f"worker:{job.worker_id}" if job.worker_id else "worker"


# --- the health monitor's commands ---------------------------------------------
# Each is one compare-and-set whose conditions repeat what the monitor's scan
# saw, so a job that moved on meanwhile (a late heartbeat, a start, a second
# monitor pass) is refused and left alone.


def orphan_unstarted_job(job_id: int, *, cutoff: datetime, reason: str, actor: str = "monitor") -> Job:
    """The monitor fails an attempt that was claimed before `cutoff` and never started."""
    job = get_job(job_id)
    with unit_of_work():
        return _end_attempt(
            job, actor=actor, lease_token=None, error=reason, exit_code=None, output=None,
            retryable=True, outcome="orphaned", give_back=False,
            conditions=[Job.status == Status.CLAIMED, Job.claimed_at < cutoff],
        )


def fail_stale_pending(job_id: int, *, cutoff: datetime, reason: str, actor: str = "monitor") -> Job:
    """A job held in pending since before `cutoff` is failed; a release meanwhile wins."""
    now = utcnow()
    with unit_of_work():
        return states.transition(
            job_id, "fail", actor=actor, reason=reason,
            conditions=[Job.status == Status.PENDING, Job.created_at < cutoff],
            values={"finished_at": now, "last_error": reason}, now=now,
        )


def release_stale_pending(job_id: int, *, cutoff: datetime, reason: str, actor: str = "monitor") -> Job:
    """A job held in pending since before `cutoff` is queued (JOBWARDEN_PENDING_ACTION=queue)."""
    now = utcnow()
    with unit_of_work():
        return states.transition(
            job_id, "force_start", actor=actor, reason=reason,
            conditions=[Job.status == Status.PENDING, Job.created_at < cutoff],
            values={"run_after": now}, now=now,
        )


def release_unconfirmed_cancellation(job_id: int, *, cutoff: datetime, actor: str = "monitor") -> bool:
    """Drop the lease a cancelled job still holds when its worker never confirmed by `cutoff`.

    Not a status change: the job stays cancelled. The worker's last heartbeat
    moves into the note event, so the job leaves the monitor's heartbeat scan.
    Returns False when there was nothing (left) to release.
    """
    now = utcnow()
    with unit_of_work():
        seen = db.session.execute(
            select(Job.lease_token, Job.worker_id, Job.heartbeat_at, Job.attempt).where(
                Job.id == job_id, Job.status == Status.CANCELLED,
                Job.lease_token.is_not(None), Job.finished_at < cutoff,
            )
        ).one_or_none()
        if seen is None:
            return False
        released = db.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == Status.CANCELLED, Job.lease_token == seen.lease_token)
            .values(lease_token=None, heartbeat_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not released:
            return False
        states.record_event(
            job_id, kind="note", actor=actor, at=now, action="cancel_unconfirmed",
            attempt=seen.attempt or None,
            reason=f"worker {seen.worker_id} never confirmed the cancellation",
            data={"worker_id": seen.worker_id,
                  "last_heartbeat_at": seen.heartbeat_at.isoformat() if seen.heartbeat_at else None},
        )
    return True


def mark_worker_gone(worker_id: str, *, cutoff: datetime) -> bool:
    """An alive worker last seen before `cutoff` is marked gone; a heartbeat meanwhile wins."""
    with unit_of_work():
        return bool(
            db.session.execute(
                update(Worker)
                .where(Worker.id == worker_id, Worker.state == "alive", Worker.last_seen_at < cutoff)
                .values(state="gone")
                .execution_options(synchronize_session=False)
            ).rowcount
        )


def prune_finished(status: str, *, cutoff: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` jobs in `status` that finished before `cutoff`, oldest first.

    Their events and attempts go with them (ON DELETE CASCADE). One transaction
    per batch, so a big backlog never holds the write lock for long.
    """
    if status not in (Status.COMPLETED, Status.CANCELLED, Status.FAILED):
        raise ValueError(f"only finished jobs are pruned, not {status}")
    batch = (
        select(Job.id)
        .where(Job.status == status, Job.finished_at < cutoff)
        .order_by(Job.finished_at)
        .limit(batch_size)
    )
    with unit_of_work():
        return db.session.execute(
            delete(Job).where(Job.id.in_(batch.scalar_subquery()))
            .execution_options(synchronize_session=False)
        ).rowcount


def uncovered_queued_types(covered: set[str], *, limit: int = 20) -> list[str]:
    """Types of queued jobs that no worker in `covered` takes (the health page's alerts)."""
    statement = select(Job.type).where(Job.status == Status.QUEUED)
    if covered:
        statement = statement.where(Job.type.not_in(sorted(covered)))
    return list(db.session.scalars(statement.distinct().order_by(Job.type).limit(limit)))


def finished_since(since: datetime, *, limit: int) -> list[Any]:
    """(status, created_at, claimed_at, started_at, finished_at) of jobs finished since `since`, newest first."""
    return list(db.session.execute(
        select(Job.status, Job.created_at, Job.claimed_at, Job.started_at, Job.finished_at)
        .where(Job.status.in_([Status.COMPLETED, Status.FAILED, Status.CANCELLED]), Job.finished_at >= since)
        .order_by(Job.finished_at.desc())
        .limit(limit)
    ))


def failures_by_error(since: datetime, *, limit: int = 20) -> list[tuple[str | None, int]]:
    """Failed jobs since `since` grouped by their error message, most frequent first."""
    count = func.count().label("n")
    return [tuple(row) for row in db.session.execute(
        select(Job.last_error, count)
        .where(Job.status == Status.FAILED, Job.finished_at >= since)
        .group_by(Job.last_error)
        .order_by(count.desc(), Job.last_error)
        .limit(limit)
    )]


# --- bulk actions ---------------------------------------------------------------

BULK_LIMIT = 1000
OPERATOR_COMMANDS: dict[str, Callable[..., Job]] = {
    "cancel": cancel_job,
    "force-start": force_start,
    "mark-failed": mark_failed,
    "resume": resume_job,
    "restart": restart_job,
}


def ids_matching(job_filter: JobFilter, *, limit: int = BULK_LIMIT) -> list[int]:
    """Ids of the jobs a filter matches, oldest first; BadQuery when more than `limit` do."""
    ids = list(db.session.scalars(
        select(Job.id).where(*job_filter.conditions()).order_by(Job.id).limit(limit + 1)
    ))
    if len(ids) > limit:
        raise BadQuery("filter", f"the filter matches more than {limit} jobs; narrow it")
    return ids


def apply_action(action: str, ids: list[int], *, actor: str, reason: str | None = None) -> dict[str, Any]:
    """One operator action on many jobs, each its own compare-and-set.

    A job that moved on (or never existed) is skipped with why; the others change.
    """
    command = OPERATOR_COMMANDS[action]
    changed, skipped = 0, []
    for job_id in dict.fromkeys(ids):
        try:
            command(job_id, actor=actor, reason=reason)
            changed += 1
        except JobNotFound:
            skipped.append({"id": job_id, "status": None, "reason": "not found"})
        except states.TransitionRefused as refused:
            skipped.append({"id": job_id, "status": refused.status,
                            "reason": f"already {refused.status} — nothing was done"})
    return {"changed": changed, "skipped": skipped}


def count_matching(job_filter: JobFilter, *, cap: int) -> int:
    """How many jobs a filter matches, counting no further than cap + 1."""
    inner = select(Job.id).where(*job_filter.conditions()).limit(cap + 1)
    return db.session.execute(select(func.count()).select_from(inner.subquery())).scalar_one()
