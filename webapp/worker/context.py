"""The job context a Python handler gets: progress, stage, log lines, steps
(durable ones too: stored results, retries, checkpoints), cooperative stopping,
and external commands that are stopped with the job.

The context is the state one attempt shares between the handler's thread and
the thread that talks to the server (see attempt.py): the handler writes
progress and steps here, the reporting thread reads them for heartbeats and
asks the handler to stop here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from ..domain.backoff import backoff_delay
from ..domain.limits import MAX_DELAY_S
from ..domain.log_lines import LOGGING, STDERR
from ..domain.step_limits import MAX_CHECKPOINT_BYTES, MAX_STEP_RESULT_BYTES, json_size
from .capture import ECHO
from .logbook import AttemptLog
from .process import OUTPUT_TAIL_BYTES, GroupProcess, OutputTail

log = logging.getLogger(__name__)

# Why an attempt is being stopped. The server already knows about the first
# two (the job moved on without us), so nothing is reported for them.
CANCEL = "cancel"
LEASE_LOST = "lease_lost"
TIMEOUT = "timeout"
SHUTDOWN = "shutdown"
ERROR = "error"
SILENT = frozenset({CANCEL, LEASE_LOST})


@dataclass(frozen=True)
class StopReason:
    kind: str
    message: str
    phase: str | None = None

    @property
    def reported(self) -> bool:
        """Whether the worker still reports the attempt (and its open steps) to the server."""
        return self.kind not in SILENT


class Stopped(BaseException):
    """Raised inside a handler that is being stopped.

    A BaseException, like KeyboardInterrupt, so a handler's `except Exception`
    does not swallow it.
    """

    def __init__(self, reason: StopReason):
        super().__init__(reason.message)
        self.reason = reason


class JobFailed(Exception):
    """Raise from a handler to fail the attempt with this message.

    `retryable=False` fails the job for good even with attempts left; `retry_in_s` sets the
    wait before the retry instead of the backoff (an upstream's Retry-After, a quota's reset).
    """

    def __init__(
        self, message: str, *, retryable: bool = True, exit_code: int | None = None, retry_in_s: float | None = None
    ):
        super().__init__(message)
        if retry_in_s is not None:
            if not retryable:
                raise ValueError("retry_in_s with retryable=False: nothing is retried")
            if (
                isinstance(retry_in_s, bool)
                or not isinstance(retry_in_s, int | float)
                or not 0 <= retry_in_s <= MAX_DELAY_S
            ):
                raise ValueError(f"retry_in_s must be a number of seconds from 0 to {MAX_DELAY_S}")
        self.retryable = retryable
        self.exit_code = exit_code
        self.retry_in_s = retry_in_s


class RecordFailed(JobFailed):
    """What a step produced (its result, a checkpoint) could not be stored: a step
    that fails with it is reported failed in phase `record`."""


def describe(error: BaseException) -> str:
    """`ValueError: bad input`: what a person needs first in an error panel."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True)
class StepFailure:
    name: str
    phase: str
    error: str
    exception: BaseException | None = None  # what ended the step, to match the job's failure to it


class Delivery(Protocol):
    """A report the handler waits for (a durable step's result): `done` is set once
    the server stored it (`error` None) or refused it (`error` says why)."""

    done: threading.Event
    error: BaseException | None

    def withdraw(self) -> bool:
        """Take the report back if it was not sent yet; False if it is on its way."""
        ...


StepReporter = Callable[..., "Delivery | None"]
RECORD_TIMEOUT_S = 30.0  # how long a durable step waits for its result to be stored
STEP_RETRY_BASE_S = 0.5
STEP_RETRY_MAX_S = 30.0


def step_retry_delay(retry: int) -> float:
    """Seconds before a step's `retry`-th retry: exponential from 0.5 s, capped at 30 s, ±20 % jitter.
    (Not the server's `retry_delay`, which reads the app's config that a worker does not have.)"""
    return backoff_delay(retry, base=STEP_RETRY_BASE_S, cap=STEP_RETRY_MAX_S)


def storable(what: str, value: Any, limit: int) -> Any:
    """`value` as it will come back from the store (JSON round trip), or RecordFailed saying why not."""
    try:
        size = json_size(value)
    except (TypeError, ValueError) as error:
        raise RecordFailed(f"{what} cannot be stored as JSON: {describe(error)}", retryable=False) from None
    if size > limit:
        raise RecordFailed(f"{what} is {size} bytes as JSON; at most {limit} are stored", retryable=False)
    return json.loads(json.dumps(value))


class JobContext:
    """What a Python handler is called with: `handler(ctx)`; its return value is the result."""

    def __init__(
        self,
        job: Mapping[str, Any],
        *,
        worker_id: str,
        report_step: StepReporter,
        wake: Callable[[], None] = lambda: None,
        kill_grace: float = 10.0,
    ):
        self.job = dict(job)
        self.job_id: int = job["id"]
        self.type: str = job["type"]
        self.attempt: int = job.get("attempt") or 1
        self.payload: Any = job.get("payload")
        self.worker_id = worker_id
        self.kill_grace = kill_grace
        self.output = OutputTail(OUTPUT_TAIL_BYTES)
        self.logbook = AttemptLog(on_pending=wake)  # every line, sent to the server's log of the attempt
        self._report_step = report_step
        self._wake = wake
        self._lock = threading.Lock()
        self._progress: float | None = None
        self._stage: str | None = None
        self._steps: list[str] = []
        self._state_version = 0
        self._stop = threading.Event()
        self._stop_reason: StopReason | None = None
        self._processes: set[GroupProcess] = set()
        # The monotonic time by which this attempt's commands must be dead unless the lease is
        # renewed (webapp.worker.lease_clock): each command's supervisor holds it even if the worker freezes.
        self._lease_until: float | None = None
        self.failed_step: StepFailure | None = None
        self.record_timeout = RECORD_TIMEOUT_S
        # Durable steps: what earlier attempts stored, names used in this run, the newest checkpoint.
        self._stored: dict[str, Mapping[str, Any]] = dict(job.get("step_results") or {})
        self._names: set[str] = set()
        stored_checkpoint = job.get("checkpoint")
        self._last_checkpoint: Any = stored_checkpoint.get("data") if stored_checkpoint else None
        self._checkpoint: dict[str, Any] | None = None
        self._checkpoint_version = 0

    # --- what handlers call -------------------------------------------------

    def progress(self, percent: float) -> None:
        """Report progress in percent (0–100); sent with the next heartbeat."""
        value = float(percent)
        if not 0 <= value <= 100:
            raise ValueError(f"progress must be between 0 and 100, got {percent!r}")
        with self._lock:
            self._progress = value
            self._state_version += 1
        self.check()

    def stage(self, name: str) -> None:
        """Name what the job is doing now (free text, shown on the dashboard)."""
        with self._lock:
            self._stage = str(name)
            self._state_version += 1
        self.check()

    def log(self, *parts: Any) -> None:
        """Append one line to the attempt's log (and to its output tail, the last 64 KB)."""
        line = " ".join(str(part) for part in parts)
        self.output.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self.logbook.write(LOGGING, line + "\n")
        log.debug("job %s: %s", self.job_id, line, extra={ECHO: True})

    def step(self, name: str, fn: Callable[..., Any] | None = None, *args: Any, retries: int = 0, **kwargs: Any) -> Any:
        """Run `fn(*args, **kwargs)` as the durable step `name` and return its result, or,
        without `fn`, a `with ctx.step(name):` block that records the step.

        A durable step's result (JSON, at most MAX_STEP_RESULT_BYTES) is stored with the
        step's `completed` event before `step` returns; in a later attempt of the job the
        step is not run again: the stored result is returned (as JSON gives it back) and
        a `replayed` event names the attempt that completed it. `retries=N` runs a step
        that raised up to N more times, after a backoff, before the failure stands.
        A `with` block records its step but has no result, so it always runs.
        Step names are unique within a run.

        Either way the step is reported started, then completed or failed with the
        attempt and phase: "run" when its body raised, "record" when its result (or a
        checkpoint) could not be stored, and the stop's phase when the worker stopped it
        for its own reasons — a timeout, a shutdown, a failure to report to the server —
        even if the body never noticed. A cancellation (or a lease lost) is not a step
        failure: the server has already moved on.
        """
        name = str(name)
        if fn is None:
            if args or kwargs or retries:
                raise TypeError("arguments and retries need a function: ctx.step(name, fn, *args, retries=N)")
            return self._step_block(name)
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries!r}")
        self.check()
        stored = self._stored.get(name)
        if stored is not None:
            self._claim_name(name)
            self._report_step(name=name, event="replayed", attempt=self.attempt, result_attempt=stored["attempt"])
            self.log(f"step {name}: replayed the result of attempt {stored['attempt']}")
            return stored["result"]
        produced: list[Any] = []
        with self._step_block(name, finish=lambda: self._record_result(name, produced[0])):
            produced.append(
                storable(
                    f"the result of step {name!r}",
                    self._run_with_retries(name, fn, args, kwargs, retries),
                    MAX_STEP_RESULT_BYTES,
                )
            )
        return produced[0]

    def checkpoint(self, data: Any) -> None:
        """Store `data` (JSON, at most MAX_CHECKPOINT_BYTES) as the job's checkpoint with the
        next heartbeat: no request of its own. A later attempt reads it as `last_checkpoint`."""
        data = storable("the checkpoint", data, MAX_CHECKPOINT_BYTES)
        with self._lock:
            self._checkpoint = {"data": data, "step": self._steps[-1] if self._steps else None}
            self._checkpoint_version += 1
        self.check()

    @property
    def last_checkpoint(self) -> Any:
        """The data of the newest checkpoint an earlier attempt stored (None if none)."""
        return self._last_checkpoint

    @contextmanager
    def _step_block(self, name: str, finish: Callable[[], None] | None = None) -> Iterator[None]:
        self.check()
        self._claim_name(name)
        self._report_step(name=name, event="started", attempt=self.attempt)
        with self._lock:
            self._steps.append(name)
            self._state_version += 1
        try:
            yield
        except Stopped as stopped:
            self._step_stopped(name, stopped.reason, stopped)
            raise
        except BaseException as error:
            self._step_failed(name, "record" if isinstance(error, RecordFailed) else "run", describe(error), error)
            raise
        else:
            reason = self.stop_reason
            if reason is not None:
                # The body finished, but the attempt was stopped meanwhile (e.g. a
                # heartbeat failed): the step's outcome cannot stand as completed.
                late = Stopped(reason)
                self._step_stopped(name, reason, late)
                raise late
            if finish is None:
                self._report_step(name=name, event="completed", attempt=self.attempt)
                return
            try:
                finish()
            except Stopped as stopped:
                self._step_stopped(name, stopped.reason, stopped)
                raise
            except RecordFailed as error:
                self._step_failed(name, "record", str(error), error)
                raise
        finally:
            with self._lock:
                if self._steps and self._steps[-1] == name:
                    self._steps.pop()

    def _claim_name(self, name: str) -> None:
        if name in self._names:
            raise ValueError(f"step {name!r} already ran in this attempt: step names must be unique within a run")
        self._names.add(name)

    def _run_with_retries(self, name: str, fn: Callable[..., Any], args: tuple, kwargs: dict, retries: int) -> Any:
        for step_attempt in range(1, retries + 2):
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                if (
                    step_attempt > retries
                    or isinstance(error, RecordFailed)
                    or (isinstance(error, JobFailed) and not error.retryable)
                ):
                    raise
                delay = step_retry_delay(step_attempt)
                self.log(f"step {name}: try {step_attempt} failed ({describe(error)}); retrying in {delay:.1f} s")
                self._report_step(
                    name=name,
                    event="retrying",
                    attempt=self.attempt,
                    phase="run",
                    error=describe(error),
                    step_attempt=step_attempt + 1,
                )
                self.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _record_result(self, name: str, result: Any) -> None:
        """Report the step completed with its result and wait until the server stored it."""
        delivery = self._report_step(name=name, event="completed", attempt=self.attempt, result=result)
        if delivery is None:
            return
        deadline = time.monotonic() + self.record_timeout
        while not delivery.done.wait(0.05):
            self.check()
            if time.monotonic() >= deadline and delivery.withdraw():
                raise RecordFailed(
                    f"the step ran but its result was not recorded: no answer from the server within "
                    f"{self.record_timeout:g} s"
                )
        if delivery.error is not None:
            raise RecordFailed(
                f"the step ran but its result was not recorded: {describe(delivery.error)}", retryable=False
            )

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up and raise `Stopped` as soon as the job is to stop."""
        if self._stop.wait(max(0.0, float(seconds))):
            self.check()

    def check(self) -> None:
        """Raise `Stopped` if the job is to stop (cancelled, timed out, shutting down…)."""
        reason = self._stop_reason
        if reason is not None:
            raise Stopped(reason)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> int:
        """Run an external command (no shell) that is stopped with the job; its exit code.

        Its output goes into the attempt's output. If the job is stopped while
        the command runs, the command's process group gets SIGTERM, then
        SIGKILL after the grace, and `Stopped` is raised.
        """
        self.check()
        with self._lock:
            process = GroupProcess(
                argv,
                output=self.output,
                log=self.logbook,
                kill_grace=self.kill_grace,
                env=env,
                cwd=cwd,
                lease_until=self._lease_until,
            )
            process.start()
            self._processes.add(process)
        try:
            if self._stop.is_set():
                process.terminate()
            returncode = process.wait()
        finally:
            with self._lock:
                self._processes.discard(process)
        self.check()
        return returncode

    # --- what the worker calls -------------------------------------------------

    @property
    def stop_reason(self) -> StopReason | None:
        return self._stop_reason

    def request_stop(self, reason: StopReason) -> bool:
        """Ask the handler to stop; SIGTERM its commands. False if already stopping.

        A later cancellation or lost lease still replaces an earlier reason:
        once the server has moved on, nothing more may be reported.
        """
        with self._lock:
            current = self._stop_reason
            if current is not None and (current.kind in SILENT or reason.kind not in SILENT):
                return False
            self._stop_reason = reason
            processes = list(self._processes)
        self._stop.set()
        for process in processes:
            process.terminate()
        self._wake()
        return current is None

    def renew_lease(self, until: float | None) -> None:
        """The lease now runs until `until` (monotonic): tell every running command's supervisor."""
        with self._lock:
            self._lease_until = until
            processes = list(self._processes)
        for process in processes:
            process.renew_lease(until)

    def kill_processes(self) -> None:
        """SIGKILL every command of this attempt now (the worker's second signal)."""
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            process.kill()

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """(version, heartbeat fields): progress, stage and the innermost open step."""
        with self._lock:
            fields: dict[str, Any] = {
                "progress": self._progress,
                "stage": self._stage,
                "current_step": self._steps[-1] if self._steps else None,
            }
            return self._state_version, fields

    def pending_checkpoint(self) -> tuple[int, dict[str, Any] | None]:
        """(version, the newest checkpoint not yet known to be stored): sent with the next heartbeat."""
        with self._lock:
            return self._checkpoint_version, self._checkpoint

    def open_steps(self) -> list[str]:
        """Steps started and not yet ended, innermost first."""
        with self._lock:
            return list(reversed(self._steps))

    def log_exception(self, error: BaseException) -> None:
        text = "".join(traceback.format_exception(error))
        self.output.write(text)
        self.logbook.write(STDERR, text)

    def _step_failed(self, name: str, phase: str, error: str, exception: BaseException) -> None:
        # The innermost step an exception passed through is the one the job failed in.
        if self.failed_step is None or self.failed_step.exception is not exception:
            self.failed_step = StepFailure(name=name, phase=phase, error=error, exception=exception)
        self._report_step(name=name, event="failed", attempt=self.attempt, phase=phase, error=error)

    def _step_stopped(self, name: str, reason: StopReason, exception: BaseException) -> None:
        if reason.reported:
            self._step_failed(name, reason.phase or reason.kind, reason.message, exception)
