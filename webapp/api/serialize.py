"""Jobs, attempts and events as the API's JSON (see schemas.py for their documented shape)."""

from __future__ import annotations

from typing import Any

from ..models import Job, JobAttempt, JobEvent
from ..timeutil import isoformat

JOB_FIELDS = (
    "id",
    "type",
    "payload",
    "status",
    "priority",
    "attempt",
    "max_attempts",
    "timeout_s",
    "progress",
    "stage",
    "current_step",
    "worker_id",
    "result",
    "last_error",
    "exit_code",
)
JOB_TIMES = ("heartbeat_at", "run_after", "created_at", "claimed_at", "started_at", "finished_at", "updated_at")


def job_json(job: Job) -> dict[str, Any]:
    data = {name: getattr(job, name) for name in JOB_FIELDS}
    data.update({name: isoformat(getattr(job, name)) for name in JOB_TIMES})
    data["cancel_requested"] = bool(job.cancel_requested)
    return data


def claimed_job_json(job: Job) -> dict[str, Any]:
    return {**job_json(job), "lease_token": job.lease_token}


def attempt_json(attempt: JobAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "worker_id": attempt.worker_id,
        "claimed_at": isoformat(attempt.claimed_at),
        "started_at": isoformat(attempt.started_at),
        "finished_at": isoformat(attempt.finished_at),
        "outcome": attempt.outcome,
        "error": attempt.error,
        "exit_code": attempt.exit_code,
        "step": attempt.step,
        "output_tail": attempt.output_tail,
        "argv": attempt.argv,
    }


def step_json(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "started_at": isoformat(step["started_at"]), "finished_at": isoformat(step["finished_at"])}


def event_json(event: JobEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": isoformat(event.at),
        "kind": event.kind,
        "actor": event.actor,
        "action": event.action,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "attempt": event.attempt,
        "reason": event.reason,
        "data": event.data,
    }
