"""A small Python client for Jobwarden's public API (`jobwarden submit`, `jobwarden jobs`,
scripts); the worker's protocol builds on it (`webapp.worker.protocol`). Every call has
a timeout. Connection errors and 5xx answers are retried with exponential
backoff (and jitter) — for calls that are safe to repeat: reads, and the
worker's calls, which the lease token fences. Creating jobs and operator
actions are retried only when the connection was never made, so a lost answer
never creates a job twice. A 4xx is never retried: it raises at once.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from .domain.backoff import backoff_delay

DEFAULT_TIMEOUT = 10.0


def _as_sent(options: dict[str, Any]) -> dict[str, Any]:
    """A create's Python values as the API reads them: a datetime as ISO 8601 (a naive one is sent
    without a zone, for the server to refuse by name), a timedelta as seconds."""
    sent = dict(options)
    if isinstance(sent.get("run_after"), datetime):
        sent["run_after"] = sent["run_after"].isoformat()
    if isinstance(sent.get("delay_s"), timedelta):
        sent["delay_s"] = sent["delay_s"].total_seconds()
    return sent


class JobwardenError(Exception):
    """Anything the client could not do."""


class ServerUnavailable(JobwardenError):
    """No answer (connection refused, timeout) or a 5xx, after the retries."""


class ClientError(JobwardenError):
    """The server refused the request (4xx). `code`, `error`, `field`, `status` as it answered."""

    def __init__(self, code: int, body: dict[str, Any]):
        self.code = code
        self.body = body
        self.error = body.get("error")
        self.field = body.get("field")
        self.status = body.get("status")
        super().__init__(f"{code} {self.error}: {body.get('message', '')}".strip())


class NotFound(ClientError):
    pass


class Conflict(ClientError):
    """Refused by the state machine: `status` is the job's current status."""


class LeaseLostError(Conflict):
    """The lease token is no longer current: stop the job; `status` says what it became."""


class JobwardenClient:
    def __init__(
        self,
        base_url: str,
        *,
        password: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = requests.Session()
        if token:  # an API token (`jw_…`): the person it belongs to, with its role
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif password:
            self.session.auth = ("operator", password)

    # --- public API -------------------------------------------------------------------

    def create(self, type: str, payload: Any = None, **options: Any) -> dict[str, Any]:
        """Create one job (options: priority, max_attempts, timeout_s, hold, queue, concurrency_key,
        unique_key, unique_for_s, delay_s (seconds or a timedelta), run_after (a datetime with its
        zone, or ISO 8601 text))."""
        body = {"type": type, "payload": payload, **_as_sent(options)}
        return self._call("POST", "/api/jobs", body, repeatable=False)

    def create_many(self, jobs: Iterable[dict[str, Any]]) -> list[int]:
        return self._call("POST", "/api/jobs/bulk", {"jobs": [_as_sent(job) for job in jobs]}, repeatable=False)["ids"]

    # From here on `list` in this class names this method: annotations say `builtins.list`.
    def list(self, **filters: Any) -> dict[str, Any]:
        """One page: filters status (list), type, worker, queue, schedule, q, sort, order, limit, cursor."""
        params = {key: value for key, value in filters.items() if value is not None}
        return self._call("GET", "/api/jobs", params=params)

    def get(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/jobs/{job_id}")

    def events(self, job_id: int) -> builtins.list[dict[str, Any]]:
        return self._call("GET", f"/api/jobs/{job_id}/events")["events"]

    def log(self, job_id: int, *, attempt: int | None = None, offset: int = 0) -> dict[str, Any]:
        """An attempt's log from byte `offset` (default: the newest attempt): attempt, offset,
        next_offset, text, cut_bytes, final. Send `next_offset` back to follow it."""
        params = {"offset": offset, **({"attempt": attempt} if attempt is not None else {})}
        return self._call("GET", f"/api/jobs/{job_id}/log", params=params)

    def run_now(self, job_id: int, reason: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/jobs/{job_id}/run-now", {"reason": reason}, repeatable=False)

    def cancel(self, job_id: int, reason: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/jobs/{job_id}/cancel", {"reason": reason}, repeatable=False)

    def force_start(self, job_id: int, reason: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/jobs/{job_id}/force-start", {"reason": reason}, repeatable=False)

    def mark_failed(self, job_id: int, reason: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/jobs/{job_id}/mark-failed", {"reason": reason}, repeatable=False)

    def resume(self, job_id: int, reason: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/jobs/{job_id}/resume", {"reason": reason}, repeatable=False)

    def restart(self, job_id: int, reason: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/jobs/{job_id}/restart", {"reason": reason}, repeatable=False)

    def bulk_action(
        self,
        action: str,
        *,
        ids: builtins.list[int] | None = None,
        filter: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        body = {"action": action, "reason": reason, **({"ids": ids} if ids is not None else {"filter": filter})}
        return self._call("POST", "/api/jobs/actions", body, repeatable=False)

    def queues(self) -> builtins.list[dict[str, Any]]:
        return self._call("GET", "/api/queues")["queues"]

    def set_queue_limits(self, name: str, reason: str | None = None, **limits: Any) -> dict[str, Any]:
        """`concurrency`, `key_concurrency`, `rate_limit` ({"limit", "period_s"}); None clears one."""
        return self._call("PATCH", f"/api/queues/{quote(name, safe='')}", {**limits, "reason": reason})

    def pause_queue(self, name: str, reason: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/queues/{quote(name, safe='')}/pause", {"reason": reason})

    def resume_queue(self, name: str, reason: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/api/queues/{quote(name, safe='')}/resume", {"reason": reason})

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/api/health")

    def cleanup(self) -> dict[str, Any]:
        return self._call("POST", "/api/admin/cleanup", {}, repeatable=False)

    # --- schedules (operator) -------------------------------------------------------

    def schedules(self) -> builtins.list[dict[str, Any]]:
        return self._call("GET", "/api/schedules")["schedules"]

    def add_schedule(self, name: str, **settings: Any) -> dict[str, Any]:
        return self._call("POST", "/api/schedules", {"name": name, **settings}, repeatable=False)

    def schedule_action(self, name: str, action: str) -> dict[str, Any]:
        """`pause`, `resume` or `trigger` (the job made)."""
        return self._call("POST", f"/api/schedules/{quote(name, safe='')}/{action}", {}, repeatable=False)

    def remove_schedule(self, name: str) -> None:
        self._call("DELETE", f"/api/schedules/{quote(name, safe='')}", repeatable=False)

    def alert_rules(self) -> builtins.list[dict[str, Any]]:
        return self._call("GET", "/api/alert-rules")["rules"]

    def add_alert_rule(self, kind: str, threshold: float, **settings: Any) -> dict[str, Any]:
        """`subject` (default `*`), `window_s`, `min_jobs`."""
        return self._call(
            "POST", "/api/alert-rules", {"kind": kind, "threshold": threshold, **settings}, repeatable=False
        )

    def set_alert_rule_enabled(self, rule_id: int, enabled: bool) -> dict[str, Any]:
        return self._call("PATCH", f"/api/alert-rules/{rule_id}", {"enabled": enabled})

    def remove_alert_rule(self, rule_id: int) -> None:
        self._call("DELETE", f"/api/alert-rules/{rule_id}", repeatable=False)

    def alerts(self) -> builtins.list[dict[str, Any]]:
        return self._call("GET", "/api/alerts")["alerts"]

    # --- transport -----------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict | None = None,
        headers: dict | None = None,
        repeatable: bool = True,
        timeout: float | None = None,
    ) -> Any:
        url = self.base_url + path
        timeout = timeout or self.timeout
        last_problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(backoff_delay(attempt, base=self.backoff, cap=self.max_backoff))
            try:
                response = self.session.request(method, url, json=body, params=params, headers=headers, timeout=timeout)
            except requests.ConnectionError as error:
                last_problem = f"cannot reach {self.base_url}: {_root_cause(error)}"
                if repeatable or _never_connected(error):
                    continue
                raise ServerUnavailable(last_problem) from None
            except requests.Timeout:
                last_problem = f"no answer from {self.base_url} within {timeout} s"
                if repeatable:
                    continue
                raise ServerUnavailable(last_problem) from None
            if response.status_code >= 500:
                last_problem = f"{method} {path}: server error {response.status_code}"
                if repeatable:
                    continue
                raise ServerUnavailable(last_problem)
            return _answer(response)
        raise ServerUnavailable(last_problem)


def _answer(response: requests.Response) -> Any:
    try:
        data = response.json()
    except ValueError:
        data = {"error": "unexpected", "message": response.text[:200]}
    if response.status_code < 400:
        return data
    raise refusal(response.status_code, data)


def refusal(code: int, data: Any) -> ClientError:
    body = data if isinstance(data, dict) else {"error": "unexpected", "message": str(data)[:200]}
    if code == 404:
        return NotFound(404, body)
    if code == 409:
        return (LeaseLostError if body.get("error") == "lease_lost" else Conflict)(409, body)
    return ClientError(code, body)


def _never_connected(error: requests.ConnectionError) -> bool:
    """True when the request never reached the server (safe to send again)."""
    cause = error.args[0] if error.args else None
    reason = getattr(cause, "reason", cause)
    return type(reason).__name__ in ("NewConnectionError", "ConnectTimeoutError") or isinstance(
        error, requests.ConnectTimeout
    )


def _root_cause(error: BaseException) -> str:
    cause = error.args[0] if error.args else error
    reason = getattr(cause, "reason", cause)
    return str(reason)
