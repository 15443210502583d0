"""What the public API answers (documentation; `webapp.jobs.serialize` produces the jobs' JSON)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
)

from ...domain.queues import Waiting
from ...jobs.serialize import JobOut, Time
from .schemas import (
    Answer,
)


class AttemptOut(Answer):
    number: int
    worker_id: str | None
    claimed_at: Time
    started_at: Time
    finished_at: Time
    outcome: str | None
    error: str | None
    exit_code: int | None
    step: str | None
    output_tail: str | None
    argv: list[str] | None = Field(None, description="The command line the attempt ran (command jobs).")


class StepOut(Answer):
    name: str | None
    attempt: int | None
    status: str | None
    started_at: Time
    finished_at: Time
    phase: str | None
    error: str | None
    result_attempt: int | None = Field(None, description="The attempt whose stored result the step has.")
    step_attempt: int | None = Field(None, description="The step's own try, when it was retried in place.")


class CheckpointOut(Answer):
    at: Time
    step: str | None
    attempt: int
    data: Any = None


class DuplicateJob(JobOut):
    duplicate: Literal[True]


class JobListed(JobOut):
    waiting: Waiting | None = Field(
        description="Why a queued job is not running yet (null: nothing holds it back but its turn)"
    )
    waiting_until: Time = Field(
        description="When what holds it back lets go, where that is known ahead: the moment a full "
        "rate window next has room (`rate_limit`), or `run_after`; null otherwise"
    )


class JobDetail(JobListed):
    queue_position: int | None = Field(
        description="1-based place in the claim order (queued jobs), counted up to queue_position_cap "
        "jobs ahead: past it, queue_position_cap + 1"
    )
    queue_position_cap: int
    attempts: list[AttemptOut]
    steps: list[StepOut]
    checkpoint: CheckpointOut | None


class EventOut(Answer):
    id: int
    at: Time
    kind: Literal["status", "step", "note"]
    actor: str
    action: str | None
    from_status: str | None
    to_status: str | None
    attempt: int | None
    reason: str | None
    data: Any = None


class JobList(Answer):
    jobs: list[JobListed]
    next_cursor: str | None


class EventList(Answer):
    events: list[EventOut]


class AttemptLog(Answer):
    attempt: int | None = Field(description="The attempt shown; null before the job's first claim.")
    offset: int
    next_offset: int = Field(description="Send it as `offset` to get what was written since.")
    text: str = Field(description="Timestamped lines: `TIME STREAM TEXT`, STREAM one of out, err, log.")
    cut_bytes: int = Field(description="Bytes cut from the middle of a log over JOBWARDEN_LOG_MAX_BYTES.")
    final: bool = Field(description="The attempt has ended: nothing more will be written.")


class CreatedIds(Answer):
    ids: list[int]


class Skipped(Answer):
    id: int
    status: str | None
    reason: str


class ActionResult(Answer):
    changed: int
    skipped: list[Skipped]


class Health(Answer):
    healthy: bool
    orphaned_jobs: list[dict[str, Any]]
    late_jobs: list[dict[str, Any]]
    stale_pending_jobs: list[dict[str, Any]]
    counts: dict[str, int]
    workers: list[dict[str, Any]]
    unserved_types: list[str] = Field(description="Types of queued jobs that no live worker takes.")
    monitor: dict[str, Any]
    webhooks: dict[str, Any] = Field(
        description="`disabled_endpoints` (failing for a day, no longer sent to) and `failing_endpoints`."
    )
    recent: dict[str, Any] = Field(
        description=(
            "What happened lately (monitor.story): `window_s`, `incident` (any note is one), and `notes`, each "
            "`kind` (orphaned, worker_died, worker_stopped, failure_spike), `severity`, `count`, `ids`, `text`."
        )
    )
    alerts: dict[str, Any] = Field(
        description="`firing` (oldest first) and `recent` (resolved, newest first): each as in GET /api/alerts."
    )


class CleanupResult(Answer):
    skipped: bool


class Liveness(Answer):
    status: Literal["ok", "unavailable"]
    message: str | None = Field(
        None, description="why unavailable: the database does not answer, or which schema is missing"
    )
