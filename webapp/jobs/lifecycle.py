"""A job's life as its worker drives it: create, claim, start, heartbeat, steps, complete, fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import update

from ..domain import statuses
from ..domain.actors import API, worker_actor
from ..domain.outcomes import Outcome
from ..domain.statuses import LIVE
from ..domain.timeutil import utcnow
from ..store import leases, step_reports, transitions
from ..store.extensions import db
from ..store.models import Job, JobAttempt, JobRow
from ..store.transaction import unit_of_work
from . import audit, steps
from .output import tail
from .policy import end_attempt
from .queries import get_job


@dataclass(frozen=True)
class Created:
    job: Job
    duplicate: bool  # a live job (or one finished within `unique_for_s`) already held its unique key


def create_jobs_once(
    specs: list[dict[str, Any]], *, actor: str = API, audit_entry: dict[str, Any] | None = None
) -> list[Created]:
    """Create jobs all or nothing, in one transaction; a spec whose `unique_key` is held
    answers with the job that holds it (webapp.store.unique). `audit_entry` (audit.entry):
    the request's audit row, committed with the jobs (in their statement where the store
    can: `transitions.create`)."""
    default_attempts = current_app.config["JOBWARDEN_DEFAULT_MAX_ATTEMPTS"]
    prepared = []
    for spec in specs:
        spec = dict(spec)
        if spec.get("max_attempts") is None:
            spec["max_attempts"] = default_attempts
        prepared.append(spec)
    # One job without a unique key is one statement on PostgreSQL (transitions.create).
    with unit_of_work(one_statement=len(prepared) == 1 and not prepared[0].get("unique_key")):
        plain = [spec for spec in prepared if not spec.get("unique_key")]
        entry_with_plain = audit_entry if plain and len(plain) == len(prepared) else None
        created = iter(
            transitions.create([_without_unique_for(spec) for spec in plain], actor=actor, audit_entry=entry_with_plain)
        )
        if audit_entry is not None and entry_with_plain is None:
            audit.write(audit_entry)
        answers = []
        for spec in prepared:
            if not spec.get("unique_key"):
                answers.append(Created(next(created), duplicate=False))
                continue
            job, duplicate = transitions.create_unique(
                _without_unique_for(spec), actor=actor, unique_for_s=spec.get("unique_for_s")
            )
            answers.append(Created(job, duplicate))
        return answers


def _without_unique_for(spec: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in spec.items() if name != "unique_for_s"}


def create_jobs(specs: list[dict[str, Any]], *, actor: str = API) -> list[Job]:
    return [created.job for created in create_jobs_once(specs, actor=actor)]


def create_job_once(*, actor: str = API, audit_entry: dict[str, Any] | None = None, **spec: Any) -> Created:
    return create_jobs_once([spec], actor=actor, audit_entry=audit_entry)[0]


def create_job(*, actor: str = API, **spec: Any) -> Job:
    return create_job_once(actor=actor, **spec).job


def claim_jobs(
    worker_id: str,
    *,
    types: list[str] | None = None,
    queues: list[str] | None = None,
    batch_size: int = 1,
    start: bool = False,
) -> list[JobRow]:
    """The claimed jobs as the claim's RETURNING gave them: rows, which the commit leaves as they are.
    One job: one statement when the part that runs first finds it (the limited part first while
    limits are in use, each taking its turns inside the statement); a part that finds none
    wrote no job, and a claim that must wait for a limited queue's turn makes the rest one
    transaction (flow.take_turns)."""
    with unit_of_work(one_statement=batch_size == 1):
        return transitions.claim(worker_id, types=types, queues=queues, batch_size=batch_size, start=start)


@dataclass(frozen=True)
class StartReport:
    job_id: int
    lease_token: str
    argv: list[str] | None = None  # a command job's argv, kept on the attempt for its job page


@dataclass(frozen=True)
class CompleteReport:
    job_id: int
    lease_token: str
    result: Any = None
    exit_code: int | None = 0
    output: str | None = None  # None keeps the output the heartbeats sent


def start_jobs(reports: list[StartReport]) -> list[transitions.Outcome]:
    """claimed → running for each job (one statement for them all on PostgreSQL); each
    answer is the started job or why it was refused."""
    now = utcnow()
    with unit_of_work():
        return transitions.transition_held(
            "start",
            [transitions.HeldJob(r.job_id, r.lease_token, attempt_values={"argv": r.argv}) for r in reports],
            values={"started_at": now, "heartbeat_at": now},
            attempt_values={"started_at": now},
            now=now,
        )


def start_job(job_id: int, lease_token: str, *, argv: list[str] | None = None) -> Job | JobRow:
    return _moved(start_jobs([StartReport(job_id, lease_token, argv)])[0])


def heartbeat(
    job_id: int,
    lease_token: str,
    *,
    progress: float | None = None,
    stage: str | None = None,
    current_step: str | None = None,
    output: str | None = None,
    checkpoint: dict[str, Any] | None = None,
    argv: list[str] | None = None,
) -> Job:
    """Keep a live job's lease alive and record its progress (and its newest checkpoint; a
    command's argv when its claim started it, which the start report carries otherwise).

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
        job = _touch_live(job_id, lease_token, values)
        attempt_values: dict[str, Any] = {}
        if output is not None:
            attempt_values["output_tail"] = tail(output)
        if argv is not None:
            attempt_values["argv"] = argv
        if attempt_values:
            _set_attempt(job, **attempt_values)
        if checkpoint is not None:
            steps.save_checkpoint(
                job_id, attempt=job.attempt, step=checkpoint.get("step"), data=checkpoint.get("data"), at=now
            )
    return job


def _touch_live(job_id: int, lease_token: str, values: dict[str, Any]) -> Job:
    """Update a live job the caller still holds, renewing its lease (not a status change,
    but fenced like one: a dead token changes nothing and says why)."""
    lease_types = leases.typed()
    job = db.session.scalars(
        update(Job)
        .where(Job.id == job_id, Job.lease_token == lease_token, Job.status.in_(LIVE))
        .values(**values, lease_expires_at=leases.expiry_sql(Job.type, lease_types))
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True),
        leases.expiry_params(values["updated_at"], lease_types),
    ).one_or_none()
    if job is None:
        raise transitions.why_refused(job_id, statuses.EDGES["start"], lease_token)
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
        job = _touch_live(job_id, lease_token, values)
        data: dict[str, Any] = {"name": name, "event": event, "phase": phase, "error": error}
        if step_attempt is not None:
            data["step_attempt"] = step_attempt
        stores_result = event == "completed" and result is not steps.NO_RESULT
        if stores_result:
            data["result_attempt"] = job.attempt
        elif result_attempt is not None:
            data["result_attempt"] = result_attempt
        recorded = step_reports.record_once(
            job_id,
            key=step_reports.report_key(name, event, step_attempt),
            actor=worker_actor(job.worker_id),
            at=now,
            attempt=attempt or job.attempt,
            reason=error,
            data=data,
        )
        if recorded and stores_result:
            steps.store_result(job_id, name=name, attempt=job.attempt, result=result, at=now)
        # Not recorded: a client's retry of a report whose answer it never got; one event is kept.
    return job


def complete_jobs(reports: list[CompleteReport]) -> list[transitions.Outcome]:
    """running → completed for each job (one statement for them all on PostgreSQL); each
    answer is the completed job or why it was refused."""
    now = utcnow()
    held = [
        transitions.HeldJob(
            r.job_id,
            r.lease_token,
            values={"result": r.result, "exit_code": r.exit_code},
            attempt_values={
                "exit_code": r.exit_code,
                "output_tail": tail(r.output) if r.output is not None else None,
            },
        )
        for r in reports
    ]
    with unit_of_work():
        return transitions.transition_held(
            "complete",
            held,
            # The worker reports its outcome once its process has stopped: nothing is left live.
            values={"finished_at": now, "progress": 100, "lease_token": None, "lease_expires_at": None},
            attempt_values={"finished_at": now, "outcome": Outcome.COMPLETED},
            now=now,
        )


def complete_job(
    job_id: int,
    lease_token: str,
    *,
    result: Any = None,
    exit_code: int | None = 0,
    output: str | None = None,
) -> Job | JobRow:
    return _moved(complete_jobs([CompleteReport(job_id, lease_token, result, exit_code, output)])[0])


def _moved(outcome: transitions.Outcome) -> Job | JobRow:
    """A single report's answer: the moved job, or its refusal raised."""
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def fail_job(
    job_id: int,
    lease_token: str,
    *,
    error: str,
    exit_code: int | None = None,
    output: str | None = None,
    retryable: bool = True,
    interrupted: bool = False,
    retry_in_s: float | None = None,
) -> Job:
    """A worker reports its attempt failed (or was interrupted by a shutdown).

    Retryable failures with attempts left go back to queued with backoff, or after
    `retry_in_s` when the handler said how long (an upstream's Retry-After); an
    interrupted attempt is handed back at once and does not use up an attempt.
    """
    job = get_job(job_id)
    with unit_of_work():
        return end_attempt(
            job,
            actor=worker_actor(job.worker_id),
            lease_token=lease_token,
            error=error,
            exit_code=exit_code,
            output=output,
            retryable=retryable,
            outcome=Outcome.INTERRUPTED if interrupted else Outcome.FAILED,
            give_back=interrupted,
            retry_in_s=retry_in_s,
        )


def _set_attempt(job: Job, **values: Any) -> None:
    db.session.execute(
        update(JobAttempt)
        .where(JobAttempt.job_id == job.id, JobAttempt.number == job.attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
