"""The retry policy: how long a live job may stay silent, when a failed attempt runs
again, and the one transition that closes an attempt by that policy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app

from ..domain.backoff import backoff_delay
from ..domain.timeutil import utcnow
from ..store import transitions
from ..store.models import Job
from .output import tail


def retry_delay(attempt: int) -> float:
    """Exponential backoff with ±25 % jitter, capped: base·2^(attempt−1)."""
    return backoff_delay(
        attempt,
        base=current_app.config["JOBWARDEN_RETRY_BASE_S"],
        cap=current_app.config["JOBWARDEN_RETRY_MAX_S"],
        jitter=0.25,
    )


def heartbeat_timeout(job: Any) -> float:
    """Seconds without a heartbeat after which a live job counts as orphaned (by its type).

    Not the job's own run time limit (`timeout_s`, which the worker enforces).
    """
    per_type = current_app.config["JOBWARDEN_TYPE_TIMEOUTS"]
    return float(per_type.get(job.type, current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"]))


def end_attempt(
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
    retry_in_s: float | None = None,
) -> Job:
    """Close the current attempt and apply the retry policy in one transition; a retry waits
    `retry_in_s` when given, else the backoff."""
    now = utcnow()
    attempts_left = job.attempt < job.max_attempts
    attempt_values = {
        "finished_at": now,
        "outcome": outcome,
        "error": error,
        "exit_code": exit_code,
        "step": job.current_step,
        **({"output_tail": tail(output)} if output is not None else {}),
    }
    common: dict[str, Any] = dict(
        actor=actor,
        reason=error,
        lease_token=lease_token,
        conditions=conditions or (),
        attempt_values=attempt_values,
        now=now,
        # The retry decision read `attempt`; it must still hold when we write.
        event_data={"step": job.current_step, "exit_code": exit_code, "outcome": outcome},
    )
    common["conditions"] = [*common["conditions"], Job.attempt == job.attempt]
    # The worker's own report comes once its process has stopped, after its last log lines: the
    # lease goes, token and all, which also seals the attempt's log (webapp.store.logs.sealed).
    # An attempt ended by anyone else keeps its lease until the worker confirms or it runs out
    # (webapp.store.leases).
    released: dict[str, Any] = {"lease_token": None, "lease_expires_at": None} if lease_token is not None else {}
    if give_back or (retryable and attempts_left):
        delay = 0.0 if give_back else retry_in_s if retry_in_s is not None else retry_delay(job.attempt)
        values: dict[str, Any] = {
            "run_after": now + timedelta(seconds=delay),
            "lease_token": None,
            "worker_id": None,
            "last_error": error,
            "exit_code": exit_code,
            "heartbeat_at": None,
            **released,
        }
        if give_back:  # a graceful hand-back (deploy, SIGTERM) costs no attempt: the one it used is given back
            values["max_attempts"] = Job.max_attempts + 1
        return transitions.transition(job.id, "retry", values=values, **common)
    return transitions.transition(
        job.id,
        "fail",
        values={"finished_at": now, "last_error": error, "exit_code": exit_code, **released},
        **common,
    )
