"""A small Python client for Jobwarden's public and internal APIs.

Used by the worker and by `jobwarden submit` / `jobwarden jobs`. Every call has
a timeout. Connection errors and 5xx answers are retried with exponential
backoff (and jitter) — for calls that are safe to repeat: reads, and the
worker's calls, which the lease token fences. Creating jobs and operator
actions are retried only when the connection was never made, so a lost answer
never creates a job twice. A 4xx is never retried: it raises at once.
"""

from __future__ import annotations

import builtins
import http.client
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from .backoff import backoff_delay

DEFAULT_TIMEOUT = 10.0


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


class ConnectionNotMade(OSError):
    """The request never reached the server: safe to send again."""


class ClaimLine:
    """The worker's claims on HTTP connections of their own: one per thread, kept alive.

    Its own, because a stopping worker must be able to end a waiting claim without
    losing the answer: `hang_up` half-closes the connection (the server sees its worker
    leave and answers at once, claiming nothing more: webapp.hangups) and the answer,
    jobs claimed a moment before included, is still read. Plain `http.client`: requests
    does not hand out the socket of a request in flight. It reads no proxy settings
    (HTTP_PROXY…): claims go straight to the server.
    """

    def __init__(self, base_url: str, *, connect_timeout: float, ca_bundle: str):
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._ca_bundle = ca_bundle
        self._address = (parts.hostname or "127.0.0.1", parts.port or (443 if self._https else 80))
        self._prefix = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout
        self._local = threading.local()  # .connection: this thread's kept-alive connection
        self._in_flight: dict[int, socket.socket] = {}  # thread id → the socket of its claim in flight
        self.hung_up = False

    def post(self, path: str, body: Any, headers: dict[str, str], *, timeout: float) -> tuple[int, Any] | None:
        """(status, JSON answer), or None once hung up. Raises ConnectionNotMade, or
        ServerUnavailable when the request may have reached the server."""
        if self.hung_up:
            return None
        connection = self._ready_connection()
        sock = connection.sock
        assert sock is not None
        try:
            sock.settimeout(timeout)
            self._in_flight[threading.get_ident()] = sock
            connection.request(
                "POST",
                self._prefix + path,
                body=json.dumps(body),
                headers={**headers, "Content-Type": "application/json"},
            )
            if self.hung_up:  # a signal came while it was being sent
                self._half_close(sock)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            self._close()
            raise ServerUnavailable(f"POST {path}: {error or type(error).__name__}") from None
        finally:
            self._in_flight.pop(threading.get_ident(), None)
        if response.will_close or self.hung_up:
            self._close()
        try:
            data = json.loads(raw)
        except ValueError:
            data = {"error": "unexpected", "message": raw[:200].decode(errors="replace")}
        return response.status, data

    def hang_up(self) -> None:
        """Half-close the claims in flight, and send no more (safe in a signal handler: no lock)."""
        self.hung_up = True
        for sock in self._in_flight.copy().values():
            self._half_close(sock)

    def drop(self) -> None:
        """Close the claims in flight outright: the server never answered the hang-up."""
        for sock in self._in_flight.copy().values():
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _half_close(sock: socket.socket) -> None:
        try:
            # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would drop the
            # TLS state that reading the answer still needs.
            socket.socket.shutdown(sock, socket.SHUT_WR)
        except OSError:
            pass  # already closed: the read that follows says so

    def _ready_connection(self) -> http.client.HTTPConnection:
        """The kept-alive connection if the server has not closed it meanwhile (as urllib3
        checks before reusing one), else a new one."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None:
            poller = select.poll()  # not select.select: it fails for descriptors past 1023
            poller.register(connection.sock, select.POLLIN)
            if not poller.poll(0):
                return connection
            self._close()
        host, port = self._address
        if self._https:
            context = ssl.create_default_context(cafile=self._ca_bundle)
            connection = http.client.HTTPSConnection(host, port, timeout=self._connect_timeout, context=context)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            raise ConnectionNotMade(str(error)) from None
        self._local.connection = connection
        return connection

    def _close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


class JobwardenClient:
    def __init__(
        self,
        base_url: str,
        *,
        internal_key: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.internal_key = internal_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = requests.Session()
        if password:
            self.session.auth = ("operator", password)
        # TLS verified as the session's other calls are (REQUESTS_CA_BUNDLE, else certifi's bundle).
        verify = self.session.merge_environment_settings(self.base_url, {}, None, True, None)["verify"]
        self.claim_line = ClaimLine(
            self.base_url,
            connect_timeout=timeout,
            ca_bundle=verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH,
        )

    # --- public API -------------------------------------------------------------------

    def create(self, type: str, payload: Any = None, **options: Any) -> dict[str, Any]:
        """Create one job (options: priority, max_attempts, timeout_s, hold)."""
        return self._call("POST", "/api/jobs", {"type": type, "payload": payload, **options}, repeatable=False)

    def create_many(self, jobs: Iterable[dict[str, Any]]) -> list[int]:
        return self._call("POST", "/api/jobs/bulk", {"jobs": list(jobs)}, repeatable=False)["ids"]

    # From here on `list` in this class names this method: annotations say `builtins.list`.
    def list(self, **filters: Any) -> dict[str, Any]:
        """One page: filters status (list), type, worker, q, sort, order, limit, cursor."""
        params = {key: value for key, value in filters.items() if value is not None}
        return self._call("GET", "/api/jobs", params=params)

    def get(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/jobs/{job_id}")

    def events(self, job_id: int) -> builtins.list[dict[str, Any]]:
        return self._call("GET", f"/api/jobs/{job_id}/events")["events"]

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

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/api/health")

    def cleanup(self) -> dict[str, Any]:
        return self._call("POST", "/api/admin/cleanup", {}, repeatable=False)

    # --- internal (worker) API -----------------------------------------------------------

    def claim(
        self, worker_id: str, types: builtins.list[str] | None = None, *, batch_size: int = 1, wait_s: float = 0
    ) -> builtins.list[dict[str, Any]]:
        """Up to batch_size jobs; with none ready the server holds the answer up to wait_s for one.

        Sent on a connection of its own (`ClaimLine`), so `hang_up_claims` can end a waiting
        claim without losing its answer. None after `hang_up_claims`: answers [] unsent."""
        # Not repeated after a lost answer: the jobs it claimed would sit claimed until the monitor frees them.
        body = {"worker_id": worker_id, "types": types, "batch_size": batch_size, "wait_s": wait_s}
        headers = self._internal_headers()
        last_problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(backoff_delay(attempt, base=self.backoff, cap=self.max_backoff))
            try:
                answer = self.claim_line.post("/api/internal/jobs/claim", body, headers, timeout=self.timeout + wait_s)
            except ConnectionNotMade as error:
                last_problem = f"cannot reach {self.base_url}: {error}"
                continue
            if answer is None:
                return []
            code, data = answer
            if code >= 500:
                raise ServerUnavailable(f"POST /api/internal/jobs/claim: server error {code}")
            if code >= 400:
                raise _refusal(code, data)
            return data["jobs"]
        raise ServerUnavailable(last_problem)

    def hang_up_claims(self) -> None:
        """For a stopping worker (safe in a signal handler): a waiting claim is half-closed, so
        the server answers at once, claiming nothing more, and its answer is still read;
        later claims are not sent."""
        self.claim_line.hang_up()

    def start(self, job_id: int, lease_token: str, **fields: Any) -> None:
        """fields: argv (a command job's command line, for the job page)."""
        self._internal(f"/jobs/{job_id}/start", {"lease_token": lease_token, **fields})

    def heartbeat(self, job_id: int, lease_token: str, **fields: Any) -> dict[str, Any]:
        """fields: progress, stage, current_step, output, checkpoint. Answers {"cancel_requested", "status"}."""
        return self._internal(f"/jobs/{job_id}/heartbeat", {"lease_token": lease_token, **fields})

    def step(self, job_id: int, lease_token: str, **fields: Any) -> None:
        """fields: name, event (started|completed|failed|retrying|replayed), attempt, phase, error,
        result (stored with `completed`), result_attempt, step_attempt."""
        self._internal(f"/jobs/{job_id}/steps", {"lease_token": lease_token, **fields})

    def complete(self, job_id: int, lease_token: str, **fields: Any) -> None:
        """fields: result, exit_code, output."""
        self._internal(f"/jobs/{job_id}/complete", {"lease_token": lease_token, **fields})

    def fail(self, job_id: int, lease_token: str, **fields: Any) -> None:
        """fields: error, exit_code, output, retryable, interrupted."""
        self._internal(f"/jobs/{job_id}/fail", {"lease_token": lease_token, **fields})

    def stopped(self, job_id: int, lease_token: str, **fields: Any) -> None:
        """A cancelled job has stopped (releases its lease). fields: output."""
        self._internal(f"/jobs/{job_id}/stopped", {"lease_token": lease_token, **fields})

    def reports(self, items: builtins.list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        """Several reports in one request, each {"kind", "job_id", "lease_token", ...its fields}.
        One answer per item, in order, each with its `code`; `item_answer` reads one as its single call would."""
        return self._internal("/reports", {"items": items})["results"]

    def worker_heartbeat(self, worker_id: str, **fields: Any) -> None:
        """fields: hostname, pid, types, concurrency."""
        self._internal("/workers/heartbeat", {"worker_id": worker_id, **fields})

    def sync_schedules(self, declared: builtins.list[dict[str, Any]]) -> dict[str, Any]:
        """Hand the server the schedules this worker's code declares (see webapp.schedules.store.sync_declared)."""
        return self._internal("/schedules/sync", {"schedules": declared})

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

    # --- transport -----------------------------------------------------------------------

    def _internal_headers(self) -> dict[str, str]:
        if not self.internal_key:
            raise JobwardenError("the internal API needs internal_key (JOBWARDEN_INTERNAL_API_KEY)")
        return {"Authorization": f"Bearer {self.internal_key}"}

    def _internal(
        self, path: str, body: dict[str, Any], *, repeatable: bool = True, timeout: float | None = None
    ) -> Any:
        headers = self._internal_headers()
        return self._call("POST", f"/api/internal{path}", body, headers=headers, repeatable=repeatable, timeout=timeout)

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
    raise _refusal(response.status_code, data)


def item_answer(result: dict[str, Any]) -> dict[str, Any]:
    """One answer of `reports`: what its single call would return, or the error it would raise."""
    code = result.get("code", 200)
    if code < 400:
        return result
    raise _refusal(code, result)


def _refusal(code: int, data: Any) -> ClientError:
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
