"""The worker's side of the internal API: claims on connections of their own
(`ClaimLine`, so a stopping worker can hang up a waiting claim without losing its
answer) and the lease-fenced reports, over the public client's retrying transport."""

from __future__ import annotations

import builtins
import http.client
import json
import select
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from requests.utils import DEFAULT_CA_BUNDLE_PATH

from ..client import JobwardenClient, JobwardenError, ServerUnavailable, refusal
from ..domain.backoff import backoff_delay


class ConnectionNotMade(OSError):
    """The request never reached the server: safe to send again."""


class ClaimLine:
    """The worker's claims on HTTP connections of their own: one per thread, kept alive.

    Its own, because a stopping worker must be able to end a waiting claim without
    losing the answer: `hang_up` half-closes the connection (the server sees its worker
    leave and answers at once, claiming nothing more: webapp.server.hangups) and the answer,
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

    def post(
        self, path: str, body: Any, headers: dict[str, str], *, timeout: float, sent: threading.Event | None = None
    ) -> tuple[int, Any] | None:
        """(status, JSON answer), or None once hung up. Raises ConnectionNotMade, or
        ServerUnavailable when the request may have reached the server. `sent` is set once the
        request is on its way (before the answer, which a held request gives only later)."""
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
            if sent is not None:
                sent.set()
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

    def close(self) -> None:
        """Close the calling thread's connection, for a thread that sends no more. Its last
        request must have been answered: closing a held one is a hang-up."""
        self._close()

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


class WorkerClient(JobwardenClient):
    """`JobwardenClient` with the internal API's key: what a worker calls."""

    def __init__(self, base_url: str, *, internal_key: str | None = None, **options: Any):
        super().__init__(base_url, **options)
        self.internal_key = internal_key
        # TLS verified as the session's other calls are (REQUESTS_CA_BUNDLE, else certifi's bundle).
        verify = self.session.merge_environment_settings(self.base_url, {}, None, True, None)["verify"]
        self.claim_line = ClaimLine(
            self.base_url,
            connect_timeout=self.timeout,
            ca_bundle=verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH,
        )
        # The worker's presence, held open on a connection of its own (webapp.server.presence).
        self.presence_line = ClaimLine(
            self.base_url,
            connect_timeout=self.timeout,
            ca_bundle=verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH,
        )

    def claim(
        self,
        worker_id: str,
        types: builtins.list[str] | None = None,
        *,
        queues: builtins.list[str] | None = None,
        batch_size: int = 1,
        wait_s: float = 0,
        start: bool = False,
    ) -> builtins.list[dict[str, Any]]:
        """Up to batch_size jobs; with none ready the server holds the answer up to wait_s for one.
        With `start` they come back running: no start report is needed before they run.

        Sent on a connection of its own (`ClaimLine`), so `hang_up_claims` can end a waiting
        claim without losing its answer. None after `hang_up_claims`: answers [] unsent."""
        # Not repeated after a lost answer: the jobs it claimed would sit claimed until the monitor frees them.
        body: dict[str, Any] = {"worker_id": worker_id, "types": types, "batch_size": batch_size, "wait_s": wait_s}
        if queues is not None:
            body["queues"] = queues
        if start:
            body["start"] = True
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
                raise refusal(code, data)
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
        """fields: progress, stage, current_step, output, checkpoint, argv. Answers {"cancel_requested", "status"}."""
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

    def presence(self, worker_id: str, *, wait_s: float, sent: threading.Event | None = None) -> None:
        """Held by the server for `wait_s`: while it is open, the server sees this worker die the
        moment its connection drops. Returns at once after `presence_line.drop()`."""
        try:
            answer = self.presence_line.post(
                "/api/internal/workers/presence",
                {"worker_id": worker_id, "wait_s": wait_s},
                self._internal_headers(),
                timeout=self.timeout + wait_s,
                sent=sent,
            )
        except ConnectionNotMade as error:
            raise ServerUnavailable(f"cannot reach {self.base_url}: {error}") from None
        if answer is None:
            return
        code, data = answer
        if code >= 500:
            raise ServerUnavailable(f"POST /api/internal/workers/presence: server error {code}")
        if code >= 400:
            raise refusal(code, data)

    def goodbye(self, worker_id: str) -> None:
        """The worker stops cleanly: the drop of its presence that follows is not a death."""
        self._internal("/workers/goodbye", {"worker_id": worker_id})

    def sync_schedules(self, declared: builtins.list[dict[str, Any]]) -> dict[str, Any]:
        """Hand the server the schedules this worker's code declares (see webapp.jobs.schedules.sync_declared)."""
        return self._internal("/schedules/sync", {"schedules": declared})

    def worker_heartbeat(self, worker_id: str, **fields: Any) -> bool:
        """fields: hostname, pid, types, concurrency. True when the server takes this worker for
        gone: only a new presence request revives it (webapp.worker.runner)."""
        answer = self._internal("/workers/heartbeat", {"worker_id": worker_id, **fields})
        return bool(answer.get("gone"))

    def _internal_headers(self) -> dict[str, str]:
        if not self.internal_key:
            raise JobwardenError("the internal API needs internal_key (JOBWARDEN_INTERNAL_API_KEY)")
        return {"Authorization": f"Bearer {self.internal_key}"}

    def _internal(
        self, path: str, body: dict[str, Any], *, repeatable: bool = True, timeout: float | None = None
    ) -> Any:
        headers = self._internal_headers()
        return self._call("POST", f"/api/internal{path}", body, headers=headers, repeatable=repeatable, timeout=timeout)


def item_answer(result: dict[str, Any]) -> dict[str, Any]:
    """One answer of `reports`: what its single call would return, or the error it would raise."""
    code = result.get("code", 200)
    if code < 400:
        return result
    raise refusal(code, result)
