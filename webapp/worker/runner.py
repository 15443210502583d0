"""The worker process: registers and heartbeats as a worker, claims jobs in
batches up to its free slots, runs each as an `Attempt`, and shuts down
gracefully on SIGTERM or SIGINT.

Claims are long polls: with nothing ready the server holds the claim until a job
is (`claim_wait`), so a job starts milliseconds after it is created and an idle
worker costs neither CPU nor database statements.

Shutdown: the first signal stops claiming — a waiting claim is hung up half-way
(the server answers at once; jobs it claimed a moment before are still received and
handed back, never left claimed) — and lets running jobs finish within the grace; then they are stopped (SIGTERM to their process groups, SIGKILL
after the kill grace) and handed back — queued again, the attempt recorded as
interrupted — and the worker exits 0. A second signal kills running commands
at once, hands the jobs back with one quick try each, and exits 1.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..client import ClientError, JobwardenError, ServerUnavailable
from ..domain.backoff import backoff_delay, jittered
from . import capture
from .attempt import Attempt
from .context import SHUTDOWN, StopReason, describe
from .handlers import Registry
from .outage import ServerOutage
from .protocol import WorkerClient
from .reports import ReportBatcher

log = logging.getLogger(__name__)

CLAIM_WAIT_S = 20.0  # below the server's limit (MAX_CLAIM_WAIT_S) and common proxy read timeouts
MIN_CLAIM_GAP_S = 0.01  # between long polls: an answer that comes back at once never makes a busy loop
HAND_BACK_WAIT_S = 10.0  # after the kill grace, for the hand-back reports to land
HUNG_UP_ANSWER_S = 5.0  # a hung-up claim's answer is waited for this long, then the connection is dropped
ABORT_WAIT_S = 2.0
PRESENCE_FIRST_WAIT_S = 2.0  # the most the first claim waits for the presence request to be sent
PRESENCE_WAIT_S = 20.0  # how long the server holds the presence request (webapp.server.presence); as CLAIM_WAIT_S


class ClaimInterrupted(Exception):
    """A signal cut a waiting claim short."""


@dataclass
class WorkerSettings:
    server: str
    internal_key: str | None
    concurrency: int = 1
    types: list[str] | None = None  # None: the registry's types; ["*"]: any type
    queues: list[str] | None = None  # None: any queue
    heartbeat_interval: float = 1.0
    poll_interval: float = 1.0  # between claims when claim_wait is 0
    claim_wait: float = CLAIM_WAIT_S  # the server holds an empty claim this long for a job (long poll)
    grace: float = 10.0
    kill_grace: float | None = None  # defaults to `grace`
    retry_max: float = 30.0
    worker_id: str | None = None
    record_timeout: float = 30.0  # a durable step's wait for its result to be stored


def types_label(claim_types: list[str] | None) -> str:
    """The claimed types for the log: None claims any type, an empty list none."""
    if claim_types is None:
        return "any"
    return ", ".join(claim_types) or "none (an empty list claims nothing)"


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class WorkerRunner:
    """Claims jobs and runs each as an `Attempt`, until a signal; not the `models.Worker` row it registers."""

    def __init__(self, settings: WorkerSettings, registry: Registry, client: WorkerClient | None = None):
        self.settings = settings
        self.registry = registry
        self.worker_id = settings.worker_id or default_worker_id()
        self.kill_grace = settings.grace if settings.kill_grace is None else settings.kill_grace
        if settings.types == ["*"]:
            self.claim_types: list[str] | None = None
        else:
            self.claim_types = settings.types or registry.types
        self.client = client or WorkerClient(
            settings.server,
            internal_key=settings.internal_key,
            timeout=max(2.0, 5 * settings.heartbeat_interval),
            retries=1,
            backoff=0.2,
        )
        self.reports = ReportBatcher(self.client)
        self.outage = ServerOutage()  # one story of the server's outages for all the worker's threads
        self.attempts: dict[int, Attempt] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_beating = threading.Event()
        self._claim_waiting = False
        self._said_goodbye = False
        self._presence_sent = threading.Event()
        self._presence_round = 0  # the presence loop that holds on; an older one ends once answered
        self._presence_sent_at = 0.0  # monotonic: when the newest presence request was sent
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
            log.info(
                "%s: no more claims; letting %d running job(s) finish within %s s",
                name,
                len(self.attempts),
                self.settings.grace,
            )
            self._shutdown_at = time.monotonic()
        else:
            log.warning("%s again: stopping at once", name)
        # Set from another thread: the handler runs inside the main thread, which may
        # hold the event's lock right now (in wait or clear); setting it here could deadlock.
        threading.Thread(target=self._stop_waiting, name="signal-wake", daemon=True).start()
        if self._signals == 1:
            # A waiting claim is half-closed: the server answers it at once and claims nothing
            # more; its answer is still read, so jobs claimed a moment before are not lost.
            self.client.hang_up_claims()
            threading.Thread(target=self._drop_unanswered_claim, name="claim-hang-up", daemon=True).start()
        elif self._claim_waiting:
            # Stop at once: out of the claim's read (the server, seeing the connection go,
            # claims nothing more for this worker; see webapp/claim_wait.py).
            self._claim_waiting = False
            raise ClaimInterrupted()

    def _drop_unanswered_claim(self) -> None:
        """A server that never saw the hang-up (a proxy in between) does not hold the worker up."""
        time.sleep(HUNG_UP_ANSWER_S)
        self.client.claim_line.drop()

    def _stop_waiting(self) -> None:
        self._wake.set()
        self._stop_beating.set()

    @property
    def stopping(self) -> bool:
        return self._signals > 0

    # --- the main loop ------------------------------------------------------------------

    def run(self) -> int:
        """Claim and run jobs until a signal; the process's exit code."""
        unknown = [t for t in (self.claim_types or []) if self.registry.get(t) is None]
        if unknown:
            log.warning("no handler for %s: such jobs will fail", ", ".join(unknown))
        capture.install()  # each handler's print and logging go to its own job's log
        log.info(
            "worker %s: %s, concurrency %d, types %s, queues %s",
            self.worker_id,
            self.settings.server,
            self.settings.concurrency,
            types_label(self.claim_types),
            ", ".join(self.settings.queues or []) or "all",
        )
        threading.Thread(target=self._beat_worker, name="worker-heartbeat", daemon=True).start()
        self._start_presence()
        # Present before the first claim: a worker killed while it runs its first job is then
        # seen dying at once, not after the heartbeat timeout (bounded: an outage must not stall it).
        self._presence_sent.wait(PRESENCE_FIRST_WAIT_S)
        next_claim = 0.0
        retry_at = 0.0
        failures = 0
        more_waiting = False
        while not self.stopping:
            now = time.monotonic()
            free = self.settings.concurrency - self._busy()
            if free > 0 and now >= retry_at and (now >= next_claim or more_waiting):
                try:
                    wait_s = 0.0 if more_waiting else self.settings.claim_wait
                    claimed = self._claim(free, wait_s)
                    more_waiting = len(claimed) == free
                    next_claim = time.monotonic() + self._pause_after(wait_s, len(claimed))
                    self.outage.answered()
                    failures = 0
                except ClaimInterrupted:
                    break
                except ServerUnavailable as error:
                    if self.stopping:
                        break  # a hung-up claim dropped after HUNG_UP_ANSWER_S: nothing to retry
                    failures += 1
                    delay = backoff_delay(failures, base=0.5, cap=self.settings.retry_max)
                    retry_at = time.monotonic() + delay
                    self.outage.unreachable("claims", error, delay)
                except JobwardenError as error:
                    self.outage.answered()
                    retry_at = time.monotonic() + self.settings.poll_interval
                    log.error("the server refused the worker: %s", error)
                except Exception:
                    retry_at = time.monotonic() + self.settings.poll_interval
                    log.exception("worker error in the claim loop")
            free = self.settings.concurrency - self._busy()
            self._wake.wait(self._sleep_for(free, retry_at, next_claim, more_waiting))
            self._wake.clear()
        return self._shut_down()

    def _pause_after(self, wait_s: float, claimed: int) -> float:
        """Seconds between the claim just answered and the next one.

        A long-polling worker claims again at once after a quick claim that found
        nothing: the next claim waits at the server, so no busy loop can come of it,
        and a job created in the pause would otherwise wait for a whole round trip.
        Otherwise a short jittered gap (long polls) or the poll interval.
        """
        if self.settings.claim_wait <= 0:
            return jittered(self.settings.poll_interval)
        if wait_s == 0 and claimed == 0:
            return 0.0
        return jittered(MIN_CLAIM_GAP_S)

    @staticmethod
    def _sleep_for(free: int, retry_at: float, next_claim: float, more_waiting: bool) -> float | None:
        """Seconds until the loop has something to do (None: until a job ends or a signal).

        Never 0 while it only waits: the next claim is due when a slot is free and
        the pause after the last claim (or a pending retry) is over, at once when the
        last claim filled every free slot and more jobs may be waiting.
        """
        now = time.monotonic()
        if free <= 0:
            return None
        if retry_at > now:
            return retry_at - now
        if more_waiting:
            return 0.0
        return max(0.0, next_claim - now)

    def _busy(self) -> int:
        with self._lock:
            return len(self.attempts)

    def _beat_worker(self) -> None:
        """Register and refresh the worker every heartbeat interval, beside the claims;
        the first time through, and until the server has them, hand it the declared schedules."""
        schedules_synced = not self.registry.schedules
        while not self.stopping:
            try:
                if not schedules_synced:
                    self._sync_schedules()
                    schedules_synced = True
                self._worker_heartbeat()
                self.outage.answered()
            except ServerUnavailable as error:
                self.outage.unreachable("the worker heartbeat", error, self.settings.heartbeat_interval)
            except JobwardenError as error:
                self.outage.answered()
                log.error("the server refused the worker's heartbeat: %s", error)
            except Exception:
                log.exception("worker error in the worker heartbeat")
            self._stop_beating.wait(self.settings.heartbeat_interval)

    def _start_presence(self) -> None:
        with self._lock:
            self._presence_round += 1
            round_ = self._presence_round
        threading.Thread(
            target=self._keep_present, args=(round_,), name=f"worker-presence-{round_}", daemon=True
        ).start()

    def _keep_present(self, round_: int) -> None:
        """Hold a presence request open at the server all the time (webapp.server.presence): killed,
        this worker's connection drops and its jobs are orphaned within seconds. A loop that a newer
        one replaced (`_present_again`) ends once its request is answered, and closes its connection
        only then: closed while held, it would be taken for this worker's death."""
        failures = 0
        while not self._said_goodbye and round_ == self._presence_round:
            try:
                self._presence_sent_at = time.monotonic()
                self.client.presence(self.worker_id, wait_s=PRESENCE_WAIT_S, sent=self._presence_sent)
                failures = 0
            except Exception as error:  # the heartbeats log the outage; only wait before the next
                failures += 1
                log.debug("worker presence: %s", error)
                time.sleep(backoff_delay(failures, base=0.5, cap=self.settings.retry_max))
        if not self._said_goodbye:
            self.client.presence_line.close()

    def _present_again(self, heartbeat_sent_at: float) -> None:
        """The server took this worker for gone (frozen or cut off past the heartbeat timeout; its
        jobs were orphaned) and its heartbeats do not revive it: a new presence request does. Sent
        at once on a connection of its own, by a new loop; the held one is left to be answered,
        as dropping it would be a death racing the revival. Not again while the newest presence
        request was sent after the heartbeat that said so: its revival is on its way."""
        if self._said_goodbye or self._presence_sent_at > heartbeat_sent_at:
            return
        log.warning("worker %s: the server takes it for gone (silent too long); presenting it again", self.worker_id)
        self._start_presence()

    def _say_goodbye(self) -> None:
        """A clean stop: told first, so the presence dropping next is not taken for a death."""
        self._said_goodbye = True
        try:
            self.client.goodbye(self.worker_id)
        except Exception as error:
            log.warning("could not say goodbye to the server (%s): its jobs are settled as a death's", error)
        self.client.presence_line.hang_up()
        self.client.presence_line.drop()

    def _sync_schedules(self) -> None:
        try:
            result = self.client.sync_schedules(list(self.registry.schedules.values()))
        except ClientError as error:  # a bad declaration: said once, not retried
            log.error("the server refused the declared schedules: %s", error)
            return
        for kind in ("created", "changed", "missing", "conflicts"):
            if result.get(kind):
                log.info("schedules %s: %s", kind, ", ".join(result[kind]))

    def _worker_heartbeat(self) -> None:
        sent_at = time.monotonic()
        gone = self.client.worker_heartbeat(
            self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            types=self.claim_types,
            concurrency=self.settings.concurrency,
        )
        if gone:
            self._present_again(sent_at)

    def _claim(self, free: int, wait_s: float) -> list[dict[str, Any]]:
        self._claim_waiting = wait_s > 0 and not self.stopping
        try:
            # Started by the claim: each job runs as soon as its answer arrives (no start report).
            jobs = self.client.claim(
                self.worker_id,
                self.claim_types,
                queues=self.settings.queues,
                batch_size=free,
                wait_s=wait_s,
                start=True,
            )
        finally:
            self._claim_waiting = False
        received_at = time.monotonic()  # the leases count from here (webapp.worker.lease_clock)
        for job in jobs:
            if self.stopping:  # the answer of a claim hung up by a signal: not to start now
                self._hand_back(job)
                continue
            try:
                self._begin(job, received_at)
            except Exception as error:  # never leave a claimed job behind
                log.exception("job %s: could not begin the attempt", job.get("id"))
                self._give_up(job, error)
        return jobs

    def _begin(self, job: dict[str, Any], received_at: float) -> None:
        attempt = Attempt(
            self.reports,
            job,
            self.registry.get(job["type"]),
            worker_id=self.worker_id,
            known_types=self.registry.types,
            heartbeat_interval=self.settings.heartbeat_interval,
            kill_grace=self.kill_grace,
            retry_max=self.settings.retry_max,
            on_done=self._attempt_done,
            record_timeout=self.settings.record_timeout,
            outage=self.outage,
            claim_received_at=received_at,
        )
        with self._lock:
            self.attempts[attempt.job_id] = attempt
        log.info("job %s (%s): attempt %s", attempt.job_id, job["type"], job.get("attempt"))
        attempt.begin()

    def _give_up(self, job: dict[str, Any], error: Exception) -> None:
        job_id = job.get("id")
        with self._lock:
            if job_id is not None:
                self.attempts.pop(job_id, None)
        try:
            self.client.fail(job["id"], job["lease_token"], error=f"worker error: {describe(error)}", retryable=True)
        except Exception:
            log.exception("job %s: could not report the worker error; the monitor will settle it", job.get("id"))

    def _hand_back(self, job: dict[str, Any]) -> None:
        """Queued again at once, the attempt recorded as interrupted (no attempt used up)."""
        log.info("job %s: claimed as the worker stops; handing it back", job.get("id"))
        try:
            self.client.fail(
                job["id"],
                job["lease_token"],
                error=f"worker {self.worker_id} stopped before the job started",
                retryable=True,
                interrupted=True,
            )
        except Exception:
            log.exception("job %s: could not hand it back; the monitor will settle it", job.get("id"))

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
            self._say_goodbye()
            return 0
        message = f"worker {self.worker_id} shut down before the job finished"
        if self._signals == 1:
            running = self._running()
            log.info("grace over: stopping and handing back %d job(s)", len(running))
            for attempt in running:
                attempt.stop(StopReason(SHUTDOWN, message, phase="shutdown"))
            if self._wait_finished(time.monotonic() + self.kill_grace + HAND_BACK_WAIT_S):
                self._say_goodbye()
                return 0
        running = self._running()
        log.warning("stopping at once: killing %d job(s) and handing them back", len(running))
        for attempt in running:
            attempt.abort(message)
        deadline = time.monotonic() + ABORT_WAIT_S
        for attempt in running:
            attempt.finished.wait(max(0.0, deadline - time.monotonic()))
        return 1
