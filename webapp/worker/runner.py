"""The worker process: registers and heartbeats as a worker, claims jobs in
batches up to its free slots, runs each as an `Attempt`, and shuts down
gracefully on SIGTERM or SIGINT.

Shutdown: the first signal stops claiming and lets running jobs finish within
the grace; then they are stopped (SIGTERM to their process groups, SIGKILL
after the kill grace) and handed back — queued again, the attempt recorded as
interrupted — and the worker exits 0. A second signal kills running commands
at once, hands the jobs back with one quick try each, and exits 1.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..client import JobwardenClient, JobwardenError, ServerUnavailable
from .attempt import Attempt
from .context import SHUTDOWN, StopReason, describe
from .handlers import Registry

log = logging.getLogger(__name__)

HAND_BACK_WAIT_S = 10.0  # after the kill grace, for the hand-back reports to land
ABORT_WAIT_S = 2.0


@dataclass
class WorkerSettings:
    server: str
    internal_key: str | None
    concurrency: int = 1
    types: list[str] | None = None  # None: the registry's types; ["*"]: any type
    heartbeat_interval: float = 1.0
    poll_interval: float = 1.0
    grace: float = 10.0
    kill_grace: float | None = None  # defaults to `grace`
    retry_max: float = 30.0
    worker_id: str | None = None
    record_timeout: float = 30.0  # a durable step's wait for its result to be stored


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(self, settings: WorkerSettings, registry: Registry, client: JobwardenClient | None = None):
        self.settings = settings
        self.registry = registry
        self.worker_id = settings.worker_id or default_worker_id()
        self.kill_grace = settings.grace if settings.kill_grace is None else settings.kill_grace
        if settings.types == ["*"]:
            self.claim_types: list[str] | None = None
        else:
            self.claim_types = settings.types or registry.types
        self.client = client or JobwardenClient(
            settings.server, internal_key=settings.internal_key,
            timeout=max(2.0, 5 * settings.heartbeat_interval), retries=1, backoff=0.2,
        )
        self.attempts: dict[int, Attempt] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._signals = 0
        self._shutdown_at: float | None = None

    # --- signals ---------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.info("%s: no more claims; letting %d running job(s) finish within %s s",
                     name, len(self.attempts), self.settings.grace)
            self._shutdown_at = time.monotonic()
        else:
            log.warning("%s again: stopping at once", name)
        # Set from another thread: the handler runs inside the main thread, which may
        # hold the event's lock right now (in wait or clear); setting it here could deadlock.
        threading.Thread(target=self._wake.set, name="signal-wake", daemon=True).start()

    @property
    def stopping(self) -> bool:
        return self._signals > 0

    # --- the main loop ------------------------------------------------------------------

    def run(self) -> int:
        """Claim and run jobs until a signal; the process's exit code."""
        unknown = [t for t in (self.claim_types or []) if self.registry.get(t) is None]
        if unknown:
            log.warning("no handler for %s: such jobs will fail", ", ".join(unknown))
        log.info("worker %s: %s, concurrency %d, types %s", self.worker_id, self.settings.server,
                 self.settings.concurrency, ", ".join(self.claim_types) if self.claim_types else "any")
        next_poll = 0.0
        next_worker_beat = 0.0
        retry_at = 0.0
        failures = 0
        more_waiting = False
        while not self.stopping:
            now = time.monotonic()
            if now >= retry_at:
                try:
                    if now >= next_worker_beat:
                        self._worker_heartbeat()
                        next_worker_beat = now + self.settings.heartbeat_interval
                    free = self.settings.concurrency - self._busy()
                    if free > 0 and (now >= next_poll or more_waiting):
                        claimed = self._claim(free)
                        more_waiting = len(claimed) == free
                        next_poll = time.monotonic() + self.settings.poll_interval * random.uniform(0.8, 1.2)
                    if failures:
                        log.info("the server answers again")
                    failures = 0
                except ServerUnavailable as error:
                    failures += 1
                    delay = min(self.settings.retry_max, 0.5 * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
                    retry_at = time.monotonic() + delay
                    log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                            "server unreachable (%s); retrying in %.1f s", error, delay)
                except JobwardenError as error:
                    retry_at = time.monotonic() + self.settings.poll_interval
                    log.error("the server refused the worker: %s", error)
                except Exception:
                    retry_at = time.monotonic() + self.settings.poll_interval
                    log.exception("worker error in the claim loop")
            free = self.settings.concurrency - self._busy()
            wake_at = [next_worker_beat, max(retry_at, time.monotonic())]
            if free > 0:
                wake_at.append(next_poll)
            self._wake.wait(max(0.0, min(wake_at) - time.monotonic()))
            self._wake.clear()
        return self._shut_down()

    def _busy(self) -> int:
        with self._lock:
            return len(self.attempts)

    def _worker_heartbeat(self) -> None:
        self.client.worker_heartbeat(
            self.worker_id, hostname=socket.gethostname(), pid=os.getpid(),
            types=self.claim_types, concurrency=self.settings.concurrency,
        )

    def _claim(self, free: int) -> list[dict[str, Any]]:
        jobs = self.client.claim(self.worker_id, self.claim_types, batch_size=free)
        for job in jobs:
            try:
                self._begin(job)
            except Exception as error:  # never leave a claimed job behind
                log.exception("job %s: could not begin the attempt", job.get("id"))
                self._give_up(job, error)
        return jobs

    def _begin(self, job: dict[str, Any]) -> None:
        attempt = Attempt(
            self.client, job, self.registry.get(job["type"]),
            worker_id=self.worker_id, known_types=self.registry.types,
            heartbeat_interval=self.settings.heartbeat_interval, kill_grace=self.kill_grace,
            retry_max=self.settings.retry_max, on_done=self._attempt_done,
            record_timeout=self.settings.record_timeout,
        )
        with self._lock:
            self.attempts[attempt.job_id] = attempt
        log.info("job %s (%s): attempt %s", attempt.job_id, job["type"], job.get("attempt"))
        attempt.begin()

    def _give_up(self, job: dict[str, Any], error: Exception) -> None:
        with self._lock:
            self.attempts.pop(job.get("id"), None)
        try:
            self.client.fail(job["id"], job["lease_token"], error=f"worker error: {describe(error)}", retryable=True)
        except Exception:
            log.exception("job %s: could not report the worker error; the monitor will settle it", job.get("id"))

    def _attempt_done(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.pop(attempt.job_id, None)
        log.info("job %s: %s", attempt.job_id, attempt.outcome)
        self._wake.set()

    # --- shutdown ---------------------------------------------------------------------

    def _running(self) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts.values() if not a.finished.is_set()]

    def _wait_finished(self, until: float) -> bool:
        """Wait until every attempt has reported its end, `until` passes, or a second signal."""
        signals = self._signals
        while self._running():
            if time.monotonic() >= until or self._signals != signals:
                return False
            self._wake.wait(0.05)
            self._wake.clear()
        return True

    def _shut_down(self) -> int:
        started = self._shutdown_at or time.monotonic()
        if self._signals == 1 and self._wait_finished(started + self.settings.grace):
            log.info("all jobs finished; exiting")
            return 0
        message = f"worker {self.worker_id} shut down before the job finished"
        if self._signals == 1:
            running = self._running()
            log.info("grace over: stopping and handing back %d job(s)", len(running))
            for attempt in running:
                attempt.stop(StopReason(SHUTDOWN, message, phase="shutdown"))
            if self._wait_finished(time.monotonic() + self.kill_grace + HAND_BACK_WAIT_S):
                return 0
        running = self._running()
        log.warning("stopping at once: killing %d job(s) and handing them back", len(running))
        for attempt in running:
            attempt.abort(message)
        deadline = time.monotonic() + ABORT_WAIT_S
        for attempt in running:
            attempt.finished.wait(max(0.0, deadline - time.monotonic()))
        return 1
