"""The job context a Python handler gets: progress, stage, log lines, steps,
cooperative stopping, and external commands that are stopped with the job.

The context is the state one attempt shares between the handler's thread and
the thread that talks to the server (see attempt.py): the handler writes
progress and steps here, the reporting thread reads them for heartbeats and
asks the handler to stop here.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

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

    `retryable=False` fails the job for good even with attempts left.
    """

    def __init__(self, message: str, *, retryable: bool = True, exit_code: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.exit_code = exit_code


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


StepReporter = Callable[..., None]


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
        self.failed_step: StepFailure | None = None

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
        """Append one line to the attempt's output (kept: the last 64 KB)."""
        line = " ".join(str(part) for part in parts)
        self.output.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        log.debug("job %s: %s", self.job_id, line)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Report a named step: started, then completed or failed with the attempt and phase.

        A step that started and did not complete is always reported failed:
        when its body raised (phase "run"), and when the worker stopped it for
        its own reasons — a timeout, a shutdown, a failure to report to the
        server — even if the body never noticed. A cancellation (or a lease
        lost) is not a step failure: the server has already moved on.
        """
        name = str(name)
        self.check()
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
            self._step_failed(name, "run", describe(error), error)
            raise
        else:
            reason = self.stop_reason
            if reason is not None:
                # The body finished, but the attempt was stopped meanwhile (e.g. a
                # heartbeat failed): the step's outcome cannot stand as completed.
                stopped = Stopped(reason)
                self._step_stopped(name, reason, stopped)
                raise stopped
            self._report_step(name=name, event="completed", attempt=self.attempt)
        finally:
            with self._lock:
                if self._steps and self._steps[-1] == name:
                    self._steps.pop()

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
        process = GroupProcess(argv, output=self.output, kill_grace=self.kill_grace, env=env, cwd=cwd)
        with self._lock:
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

    def kill_processes(self) -> None:
        """SIGKILL every command of this attempt now (the worker's second signal)."""
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            process.kill()

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """(version, heartbeat fields): progress, stage and the innermost open step."""
        with self._lock:
            fields: dict[str, Any] = {"progress": self._progress, "stage": self._stage,
                                      "current_step": self._steps[-1] if self._steps else None}
            return self._state_version, fields

    def open_steps(self) -> list[str]:
        """Steps started and not yet ended, innermost first."""
        with self._lock:
            return list(reversed(self._steps))

    def log_exception(self, error: BaseException) -> None:
        self.output.write("".join(traceback.format_exception(error)))

    def _step_failed(self, name: str, phase: str, error: str, exception: BaseException) -> None:
        # The innermost step an exception passed through is the one the job failed in.
        if self.failed_step is None or self.failed_step.exception is not exception:
            self.failed_step = StepFailure(name=name, phase=phase, error=error, exception=exception)
        self._report_step(name=name, event="failed", attempt=self.attempt, phase=phase, error=error)

    def _step_stopped(self, name: str, reason: StopReason, exception: BaseException) -> None:
        if reason.reported:
            self._step_failed(name, reason.phase or reason.kind, reason.message, exception)
