"""The job state machine: statuses, the transition table, and the only code that
writes a job's status.

Every change is one conditional UPDATE (id, allowed current statuses, and for
worker calls the lease token) plus one event row, flushed in the caller's
transaction. When nothing matched, the caller learns why: the job does not
exist, its lease is gone, or its current status refuses the move.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Callable, Iterable

from sqlalchemy import ColumnElement, func, insert, select, update

from .extensions import db
from .metrics import TRANSITIONS
from .models import Job, JobAttempt, JobEvent
from .timeutil import utcnow


class Status(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.capitalize()


LIVE = frozenset({Status.CLAIMED, Status.RUNNING})
UNFINISHED = frozenset({Status.PENDING, Status.QUEUED, Status.CLAIMED, Status.RUNNING})
FINISHED = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
CREATE_STATUSES = frozenset({Status.PENDING, Status.QUEUED})


@dataclass(frozen=True)
class Edge:
    name: str
    sources: frozenset[Status]
    target: Status


EDGES: dict[str, Edge] = {
    edge.name: edge
    for edge in (
        Edge("force_start", frozenset({Status.PENDING, Status.FAILED, Status.CANCELLED}), Status.QUEUED),
        Edge("claim", frozenset({Status.QUEUED}), Status.CLAIMED),
        Edge("start", frozenset({Status.CLAIMED}), Status.RUNNING),
        Edge("retry", LIVE, Status.QUEUED),
        Edge("complete", frozenset({Status.RUNNING}), Status.COMPLETED),
        Edge("fail", UNFINISHED, Status.FAILED),
        Edge("cancel", UNFINISHED, Status.CANCELLED),
    )
}

# The contract's table as (from, to) pairs; anything else is refused.
ALLOWED: frozenset[tuple[Status, Status]] = frozenset(
    (source, edge.target) for edge in EDGES.values() for source in edge.sources
)


def edges_from(status: str) -> list[str]:
    """Names of the transitions the state machine allows from `status`."""
    return [edge.name for edge in EDGES.values() if status in edge.sources]


class JobNotFound(LookupError):
    def __init__(self, job_id: int):
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class TransitionRefused(Exception):
    """Nothing changed: the job's current status does not allow the move."""

    def __init__(self, job_id: int, action: str, status: str):
        super().__init__(f"refused: current status is {status}")
        self.job_id = job_id
        self.action = action
        self.status = status


class LeaseLost(TransitionRefused):
    """The caller's lease token is no longer current: the job moved on without it."""

    def __init__(self, job_id: int, action: str, status: str):
        super().__init__(job_id, action, status)
        self.args = (f"lease lost: current status is {status}",)


def event_row(
    job_id: int,
    *,
    kind: str,
    actor: str,
    at: datetime,
    action: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    attempt: int | None = None,
    reason: str | None = None,
    data: Any = None,
) -> dict[str, Any]:
    return dict(
        job_id=job_id, kind=kind, actor=actor, at=at, action=action,
        from_status=from_status, to_status=to_status, attempt=attempt,
        reason=reason, data=data,
    )


def record_events(rows: list[dict[str, Any]]) -> None:
    """Append event rows in the caller's transaction with one plain INSERT.

    Events are never read back as objects in the transaction that writes them,
    so they skip the ORM's unit of work: that flush was a third of a worker
    command's cost.
    """
    if rows:
        db.session.execute(insert(JobEvent.__table__), rows)


def record_event(job_id: int, **fields: Any) -> None:
    """Append one event row (the fields of `event_row`)."""
    record_events([event_row(job_id, **fields)])


def _why_refused(job_id: int, edge: Edge, lease_token: str | None) -> TransitionRefused:
    row = db.session.execute(
        select(Job.status, Job.lease_token).where(Job.id == job_id)
    ).one_or_none()
    if row is None:
        raise JobNotFound(job_id)
    status, current_token = row
    if lease_token is not None and (current_token != lease_token or status not in LIVE):
        return LeaseLost(job_id, edge.name, status)
    return TransitionRefused(job_id, edge.name, status)


def transition(
    job_id: int,
    action: str,
    *,
    actor: str | Callable[[Job], str],
    reason: str | None = None,
    lease_token: str | None = None,
    conditions: Iterable[ColumnElement[bool]] = (),
    values: dict[str, Any] | None = None,
    attempt_values: dict[str, Any] | None = None,
    event_data: Any = None,
    now: datetime | None = None,
) -> Job:
    """Apply one transition as a compare-and-set and record its event.

    `conditions` narrow the match further (the monitor's heartbeat cut-off);
    `attempt_values` close or update the current attempt's row when the job
    comes from a live status. `actor` may be a function of the updated row, so
    a worker's name comes from the row it holds rather than from an extra read.
    Flushes; the caller commits or rolls back.
    """
    edge = EDGES[action]
    now = now or utcnow()
    # A multi-source edge reads the current status first so the event can name it,
    # then updates only if the status is still the one read.
    for _ in range(5):
        if len(edge.sources) == 1:
            (expected,) = edge.sources
        else:
            expected = db.session.execute(select(Job.status).where(Job.id == job_id)).scalar()
            if expected is None:
                raise JobNotFound(job_id)
            if expected not in edge.sources:
                raise _why_refused(job_id, edge, lease_token)
        statement = (
            update(Job)
            .where(Job.id == job_id, Job.status == expected, *conditions)
            .values(status=edge.target, updated_at=now, **(values or {}))
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if lease_token is not None:
            statement = statement.where(Job.lease_token == lease_token)
        job = db.session.scalars(statement).one_or_none()
        if job is not None:
            break
        if len(edge.sources) == 1 or lease_token or conditions:
            raise _why_refused(job_id, edge, lease_token)
        # The status moved between our read and our write: read it again.
    else:
        raise _why_refused(job_id, edge, lease_token)

    if attempt_values and expected in LIVE and job.attempt > 0:
        db.session.execute(
            update(JobAttempt)
            .where(JobAttempt.job_id == job_id, JobAttempt.number == job.attempt)
            .values(**attempt_values)
            .execution_options(synchronize_session=False)
        )
    record_event(
        job_id, kind="status", actor=actor(job) if callable(actor) else actor, at=now, action=action,
        from_status=str(expected), to_status=str(edge.target),
        attempt=job.attempt or None, reason=reason, data=event_data,
    )
    db.session.flush()
    TRANSITIONS.labels(action, edge.target).inc()
    return job


def create(specs: list[dict[str, Any]], *, actor: str, now: datetime | None = None) -> list[Job]:
    """Insert new jobs: `pending` when held, `queued` otherwise (the "(new)" edge)."""
    now = now or utcnow()
    jobs = []
    for spec in specs:
        spec = dict(spec)
        hold = spec.pop("hold", False)
        jobs.append(
            Job(
                status=Status.PENDING if hold else Status.QUEUED,
                created_at=now, updated_at=now, run_after=now,
                attempt=0, cancel_requested=False, **spec,
            )
        )
    db.session.add_all(jobs)
    db.session.flush()
    record_events([
        event_row(job.id, kind="status", actor=actor, at=now, action="create", to_status=job.status)
        for job in jobs
    ])
    for job in jobs:
        TRANSITIONS.labels("create", job.status).inc()
    return jobs


def _new_token():
    if db.session.get_bind().dialect.name == "postgresql":
        return func.replace(func.cast(func.gen_random_uuid(), db.String), "-", "")
    return func.lower(func.hex(func.randomblob(16)))


def claim(
    worker_id: str,
    *,
    types: list[str] | None = None,
    batch_size: int = 1,
    now: datetime | None = None,
) -> list[Job]:
    """Atomically hand up to `batch_size` due queued jobs to one worker.

    One UPDATE … RETURNING: on PostgreSQL the candidates are locked with
    FOR UPDATE SKIP LOCKED so claimers never wait on or collide with each other;
    on SQLite the UPDATE takes the database's single write lock before it reads.
    Each claimed job gets a fresh lease token, one more attempt and an attempt row.
    """
    now = now or utcnow()
    candidates = (
        select(Job.id)
        .where(Job.status == Status.QUEUED, Job.run_after <= now)
        .order_by(Job.priority.desc(), Job.id)
        .limit(batch_size)
    )
    if types:
        candidates = candidates.where(Job.type.in_(types))
    if db.session.get_bind().dialect.name == "postgresql":
        # A CTE is evaluated once, so the locked rows are exactly the rows updated.
        picked = candidates.with_for_update(skip_locked=True).cte("picked")
        chosen = Job.id == picked.c.id
    else:
        chosen = Job.id.in_(candidates.scalar_subquery())
    statement = (
        update(Job)
        .where(chosen, Job.status == Status.QUEUED)
        .values(
            status=Status.CLAIMED,
            lease_token=_new_token(),
            attempt=Job.attempt + 1,
            worker_id=worker_id,
            claimed_at=now,
            heartbeat_at=now,
            started_at=None,
            progress=None,
            stage=None,
            current_step=None,
            cancel_requested=False,
            updated_at=now,
        )
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    jobs = sorted(db.session.scalars(statement).all(), key=lambda j: (-j.priority, j.id))
    if jobs:
        db.session.execute(insert(JobAttempt.__table__), [
            dict(job_id=job.id, number=job.attempt, worker_id=worker_id, claimed_at=now) for job in jobs
        ])
    record_events([
        event_row(
            job.id, kind="status", actor=f"worker:{worker_id}", at=now, action="claim",
            from_status=Status.QUEUED, to_status=Status.CLAIMED, attempt=job.attempt,
        )
        for job in jobs
    ])
    db.session.flush()
    if jobs:
        TRANSITIONS.labels("claim", Status.CLAIMED).inc(len(jobs))
    return jobs
