"""One attempt at one job, from the first status update to the last, on one
guarded path.

Two threads per attempt:

- the handler thread runs the handler and decides the outcome; whatever
  raises on it — the handler, the worker's own code — ends in a report, so no
  job is ever left claimed or running by an error in the worker;
- the reporting thread is the only one that talks to the server about the
  attempt (through the worker's `ReportBatcher`, which coalesces the reports of
  all its attempts into as few requests as it can). It sends, in order, everything queued in the outbox (start, step
  events, the final complete or fail) and a heartbeat every interval with
  progress, stage, step and new output, and the job's new log lines every
  LOG_SEND_S (at once while a backlog is waiting), one piece per round so a
  flood never holds up its heartbeats. When the server is unreachable it
  keeps the reports and retries with backoff while the handler keeps running.
  A heartbeat answer that says cancel, or a `lease_lost` answer to anything,
  stops the job. A job stopped so, once stopped, is confirmed to the server
  (`stopped`, naming the attempt), so the monitor notes only cancellations nobody
  confirmed and the job need not wait for the lease to run again. A lease the
  server could not renew stops the job before it runs out (webapp.worker.lease_clock),
  the commands' supervisors holding the same deadline should the worker freeze. Any
  other failure to report is a bookkeeping failure: the job is stopped and
  failed, and its open steps are reported failed.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..client import Conflict, LeaseLostError, NotFound, ServerUnavailable
from ..domain.backoff import backoff_delay
from ..domain.limits import LOG_ITEM_MAX_BYTES
from ..domain.outcomes import Outcome
from .capture import routed_to
from .context import (
    CANCEL,
    ERROR,
    LEASE_LOST,
    RECORD_TIMEOUT_S,
    SHUTDOWN,
    TIMEOUT,
    JobContext,
    JobFailed,
    Stopped,
    StopReason,
    describe,
)
from .handlers import CommandHandler, PythonHandler, timeout_for
from .lease_clock import LeaseClock, stop_lead_s
from .logbook import Piece
from .outage import ServerOutage
from .process import TemplateError, clip_argv
from .reports import ReportBatcher

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000
ABANDON_AFTER_S = 2.0  # beyond the kill grace, for a Python handler that ignores the stop
LOG_SEND_S = 0.2  # new log lines wait at most this long (plus a request) before they are sent


class ReportDelivery:
    """The handler's side of a report it waits for (see context.Delivery)."""

    def __init__(self, attempt: Attempt):
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._attempt = attempt
        self.report: Report | None = None

    def withdraw(self) -> bool:
        return self._attempt._withdraw(self)


@dataclass(eq=False)  # reports are compared by identity in the outbox
class Report:
    """One call to the server about this attempt, queued in order."""

    kind: str  # start | heartbeat (a started job's argv) | step | complete | fail | stopped
    fields: dict[str, Any] = field(default_factory=dict)
    fallback: bool = False  # the minimal failure sent when the server refused the final report
    delivery: ReportDelivery | None = None  # set when the handler waits for this report

    @property
    def final(self) -> bool:
        return self.kind in ("complete", "fail", "stopped")

    @property
    def phase(self) -> str:
        return {"start": "start", "heartbeat": "start", "step": "report"}.get(self.kind, "finish")

    @property
    def label(self) -> str:
        if self.kind == "step":
            return f"step {self.fields['name']!r} {self.fields['event']}"
        return self.kind


class CheckpointRefused(Exception):
    """The server refused a heartbeat that carried a checkpoint."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _seconds(value: float) -> str:
    return f"{value:g}"


def next_beat(now: float, interval: float) -> float:
    """The next heartbeat, on a clock-wide grid of the interval, at least half an interval
    away: the attempts of one worker beat together, so their heartbeats share a request."""
    return (math.floor((now + interval / 2) / interval) + 1) * interval


class Attempt:
    def __init__(
        self,
        reports: ReportBatcher,
        job: dict[str, Any],
        handler: PythonHandler | CommandHandler | None,
        *,
        worker_id: str,
        known_types: list[str],
        heartbeat_interval: float = 1.0,
        kill_grace: float = 10.0,
        retry_max: float = 30.0,
        on_done: Callable[[Attempt], None] = lambda attempt: None,
        record_timeout: float = RECORD_TIMEOUT_S,
        outage: ServerOutage | None = None,
        claim_received_at: float | None = None,
    ):
        self.reports = reports
        self.job = job
        self.job_id: int = job["id"]
        self.lease_token: str = job["lease_token"]
        self.handler = handler
        self.worker_id = worker_id
        self.known_types = known_types
        self.heartbeat_interval = heartbeat_interval
        self.kill_grace = kill_grace
        self.retry_max = retry_max
        self.on_done = on_done
        self.outage = outage or ServerOutage()
        self._wake = threading.Event()
        self.ctx = JobContext(
            job,
            worker_id=worker_id,
            report_step=self._queue_step,
            wake=self._wake.set,
            kill_grace=kill_grace,
        )
        self.ctx.record_timeout = record_timeout
        received_at = time.monotonic() if claim_received_at is None else claim_received_at
        self.lease = LeaseClock(job.get("lease_s"), received_at)
        self.ctx.renew_lease(self.lease.until)
        self._lock = threading.Lock()
        self._outbox: deque[Report] = deque()
        self._in_flight: Report | None = None
        self._sent_checkpoint_version = 0
        self._final_queued = False
        self._cancelled = False  # the server cancelled the job or moved on: confirm once the handler has stopped
        self._stopped_outcome = Outcome.CANCELLED  # or LEASE_LOST
        self._handler_ended = False
        self._started = threading.Event()
        self.finished = threading.Event()  # nothing more will be reported
        self.done = threading.Event()  # finished, and the handler thread has ended
        self.outcome: str | None = None
        self.timeout_s: float | None = None
        self._deadline: float | None = None
        self._stop_requested_at: float | None = None
        self._sent_output_version = 0
        self._log_sent_at = 0.0
        self._handler_thread = threading.Thread(target=self._run, name=f"job-{self.job_id}", daemon=True)
        self._reporter_thread = threading.Thread(target=self._report_loop, name=f"report-{self.job_id}", daemon=True)

    # --- control from the runner ----------------------------------------------

    def begin(self) -> None:
        if self.job.get("status") == "running":
            # The claim started it: the handler runs now; a command's argv follows in a heartbeat.
            self._started.set()
            argv = self._start_fields()
            if argv:
                self._queue(Report("heartbeat", argv))
        else:
            # Queued before either thread runs: the reporting thread sends it as its first act,
            # with no hand-off from the handler thread in between (the job's pickup latency).
            self._queue(Report("start", self._start_fields()))
        self._reporter_thread.start()
        self._handler_thread.start()

    def stop(self, reason: StopReason) -> None:
        if self.ctx.request_stop(reason):
            self._stop_requested_at = time.monotonic()
        self._wake.set()

    def abort(self, message: str) -> None:
        """The worker's second signal: kill the commands now and hand the job back at once."""
        reason = StopReason(SHUTDOWN, message, phase="shutdown")
        self.stop(reason)
        self.ctx.kill_processes()
        self._queue_final_for(reason)

    # --- the handler thread: the guarded path ---------------------------------------

    def _run(self) -> None:
        with routed_to(self.ctx.logbook):  # the handler's print and logging go to this attempt's log
            self._run_routed()

    def _run_routed(self) -> None:
        try:
            if not self._wait_started():
                reason = self.ctx.stop_reason
                if reason is not None and reason.reported:
                    self._queue_fail(f"could not start the job: {reason.message}", retryable=True)
                return
            self._execute()
        except BaseException as error:  # the worker's own failure: still report the attempt
            log.exception("job %s: worker error", self.job_id)
            self._queue_fail(f"worker error: {describe(error)}", retryable=True)
        finally:
            with self._lock:
                self._handler_ended = True
                confirm = self._cancelled
            if confirm:
                self._queue_stopped()
            self.finished.wait()
            self.done.set()
            self.on_done(self)

    def _start_fields(self) -> dict[str, Any]:
        """A command job's argv goes with the start, so its job page shows what runs."""
        if not isinstance(self.handler, CommandHandler):
            return {}
        try:
            return {"argv": clip_argv(self.handler.argv_for(self.ctx.payload))}
        except TemplateError:
            return {}  # the handler fails the job, naming the payload field

    def _wait_started(self) -> bool:
        while not self._started.is_set():
            if self.ctx.stop_reason is not None or self.finished.is_set():
                return False
            self._started.wait(0.05)
        return True

    def _execute(self) -> None:
        ctx = self.ctx
        if self.handler is None:
            known = ", ".join(self.known_types) or "none"
            self._queue_fail(
                f"no handler for job type {ctx.type!r} on worker {self.worker_id} (it handles: {known})",
                retryable=False,
            )
            return
        self.timeout_s = timeout_for(self.job, self.handler)
        if self.timeout_s:
            self._deadline = time.monotonic() + self.timeout_s
            self._wake.set()
        try:
            result = self.handler.run(ctx)
        except Stopped as stopped:
            self._finish_stopped(stopped.reason, stopped)
        except JobFailed as failure:
            if ctx.stop_reason is not None:
                self._finish_stopped(ctx.stop_reason, failure)
            else:
                self._queue_fail(
                    self._with_step(str(failure), failure),
                    retryable=failure.retryable,
                    exit_code=failure.exit_code,
                    retry_in_s=failure.retry_in_s,
                )
        except Exception as error:
            ctx.log_exception(error)
            if ctx.stop_reason is not None:
                self._finish_stopped(ctx.stop_reason, error)
            else:
                self._queue_fail(self._with_step(describe(error), error), retryable=True)
        else:
            if ctx.stop_reason is not None:
                self._finish_stopped(ctx.stop_reason, None)
                return
            try:
                json.dumps(result)
            except (TypeError, ValueError) as error:
                self._queue_fail(f"the handler's result cannot be stored as JSON: {describe(error)}", retryable=False)
                return
            self._queue(Report("complete", {"result": result, "exit_code": 0, "output": ctx.output.text()}))

    def _with_step(self, message: str, error: BaseException | None) -> str:
        step = self.ctx.failed_step
        if step is not None and error is not None and step.exception is error:
            return f"step {step.name!r} failed ({step.phase}): {step.error}"
        return message

    def _finish_stopped(self, reason: StopReason, error: BaseException | None) -> None:
        if not reason.reported:
            return
        self._queue_final_for(reason, error)

    def _queue_final_for(self, reason: StopReason, error: BaseException | None = None) -> None:
        """The final report for a stop the worker decided on (timeout, shutdown, bookkeeping)."""
        if not reason.reported:
            return
        open_steps = self._fail_open_steps(reason)
        if open_steps:  # the handler never noticed: the job failed in its innermost open step
            message = f"step {open_steps[0]!r} failed ({reason.phase or reason.kind}): {reason.message}"
        else:
            message = self._with_step(reason.message, error)
        if reason.kind == SHUTDOWN:
            self._queue_fail(message, retryable=True, interrupted=True)
        else:
            self._queue_fail(message, retryable=True)

    def _fail_open_steps(self, reason: StopReason) -> list[str]:
        """Steps a handler that never noticed the stop left open are reported failed; their names."""
        open_steps = self.ctx.open_steps()
        for name in open_steps:
            self._queue_step(
                name=name,
                event="failed",
                attempt=self.ctx.attempt,
                phase=reason.phase or reason.kind,
                error=reason.message,
            )
        return open_steps

    # --- the outbox ---------------------------------------------------------------

    def _queue_step(self, **fields: Any) -> ReportDelivery | None:
        """Queue a step event; a completed step's result comes with a delivery to wait on."""
        report = Report("step", fields)
        if fields.get("event") == "completed" and "result" in fields:
            report.delivery = ReportDelivery(self)
            report.delivery.report = report
        self._queue(report)
        return report.delivery

    def _withdraw(self, delivery: ReportDelivery) -> bool:
        with self._lock:
            if delivery.done.is_set() or self._in_flight is delivery.report:
                return False
            if delivery.report is not None and delivery.report in self._outbox:
                self._outbox.remove(delivery.report)
            return True

    def _queue_fail(
        self,
        error: str,
        *,
        retryable: bool,
        exit_code: int | None = None,
        interrupted: bool = False,
        retry_in_s: float | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "error": _clip(error),
            "exit_code": exit_code,
            "output": self.ctx.output.text(),
            "retryable": retryable,
            "interrupted": interrupted,
        }
        if retry_in_s is not None:  # sent only when given: a server before it refuses unknown fields
            fields["retry_in_s"] = retry_in_s
        self._queue(Report("fail", fields))

    def _queue_stopped(self) -> None:
        """Tell the server the cancelled job has stopped: it goes before anything else."""
        with self._lock:
            if self.finished.is_set():
                return
            self._outbox.clear()
            self._outbox.append(Report("stopped", {"output": self.ctx.output.text(), "attempt": self.ctx.attempt}))
        self._wake.set()

    def _queue(self, report: Report) -> None:
        with self._lock:
            if self._final_queued or self.finished.is_set():
                return
            self._outbox.append(report)
            if report.final:
                self._final_queued = True
        self._wake.set()

    # --- the reporting thread ---------------------------------------------------------

    def _report_loop(self) -> None:
        """Report until nothing is left to report; a bug in here restarts the loop, never ends it."""
        while not self.finished.is_set():
            try:
                self._report_until_finished()
            except Exception:
                log.exception("job %s: the reporting loop failed; restarting it", self.job_id)
                time.sleep(self.heartbeat_interval)

    def _report_until_finished(self) -> None:
        beat_at = next_beat(time.monotonic(), self.heartbeat_interval)
        retry_at = 0.0
        failures = 0  # consecutive unanswered requests: only an answer resets the backoff
        while not self.finished.is_set():
            now = time.monotonic()
            self._check_deadline(now)
            self._check_lease(now)
            self._check_abandoned(now)
            if now >= retry_at:
                try:
                    answered = self._deliver()
                    if (
                        not self.finished.is_set()
                        and self._started.is_set()
                        and not self._final_queued
                        and time.monotonic() >= beat_at
                    ):
                        self._beat()  # a heartbeat that failed stays due: the retry sends it
                        beat_at = next_beat(time.monotonic(), self.heartbeat_interval)
                        answered = True
                    if not self.finished.is_set() and self._log_due(time.monotonic()):
                        self._send_log_piece()
                        answered = True
                    if answered:
                        self.outage.answered()
                        failures = 0
                except ServerUnavailable as error:
                    failures += 1
                    delay = backoff_delay(failures, base=0.5, cap=self.retry_max)
                    retry_at = time.monotonic() + delay
                    self.outage.unreachable(f"job {self.job_id}", error, delay)
                except (LeaseLostError, Conflict, NotFound) as error:
                    self.outage.answered()
                    self._lost(error)
                    return
                except CheckpointRefused as refused:
                    log.error("job %s: the server refused the checkpoint: %s", self.job_id, refused.error)
                    self._bookkeeping_failed("record", "the checkpoint", refused.error)
                except Exception as error:  # a heartbeat the server refused, or our own bug
                    log.exception("job %s: heartbeat failed", self.job_id)
                    self._bookkeeping_failed("heartbeat", "the heartbeat", error)
            # the next heartbeat, not before the retry is due; queued reports go at the retry
            wake_at = [max(beat_at, retry_at)]
            with self._lock:
                if self._outbox:
                    wake_at.append(retry_at)
            if self._deadline is not None:
                wake_at.append(self._deadline)
            if self.ctx.logbook.unsent_bytes:
                wake_at.append(max(retry_at, self._log_sent_at + self._log_pause()))
            lease_stop_at = self._lease_stop_at()
            if lease_stop_at is not None and self.ctx.stop_reason is None:
                wake_at.append(lease_stop_at)
            if self._stop_requested_at is not None:
                wake_at.append(self._stop_requested_at + self.kill_grace + ABANDON_AFTER_S)
            timeout = max(0.0, min(wake_at) - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()

    def _deliver(self) -> bool:
        """Send the outbox in order; whether the server answered any of it."""
        answered = False
        while not self.finished.is_set():
            with self._lock:
                if not self._outbox:
                    return answered
                report = self._outbox[0]
                self._in_flight = report
            try:
                self._send(report)
            except (ServerUnavailable, LeaseLostError, Conflict, NotFound):
                with self._lock:
                    self._in_flight = None
                raise
            except Exception as error:
                with self._lock:
                    if self._outbox and self._outbox[0] is report:
                        self._outbox.popleft()
                    self._in_flight = None
                answered = True
                log.exception("job %s: reporting %s failed", self.job_id, report.label)
                if report.delivery is not None:  # the waiting step fails in phase "record"
                    report.delivery.error = error
                    report.delivery.done.set()
                elif report.final:
                    self._final_refused(report, error)
                else:
                    self._bookkeeping_failed(report.phase, report.label, error)
                continue
            with self._lock:
                if self._outbox and self._outbox[0] is report:
                    self._outbox.popleft()
                if report.delivery is not None:
                    report.delivery.done.set()
                self._in_flight = None
            answered = True
            if report.kind == "start":
                self._started.set()
            if report.final:
                self.outcome = {"complete": Outcome.COMPLETED, "stopped": self._stopped_outcome}.get(report.kind) or (
                    Outcome.INTERRUPTED if report.fields.get("interrupted") else Outcome.FAILED
                )
                self.finished.set()
        return answered

    def _log_pause(self) -> float:
        """A backlog goes piece after piece; a trickle waits LOG_SEND_S to gather lines."""
        return 0.0 if self.ctx.logbook.unsent_bytes >= LOG_ITEM_MAX_BYTES else LOG_SEND_S

    def _log_due(self, now: float) -> bool:
        return bool(self.ctx.logbook.unsent_bytes) and now >= self._log_sent_at + self._log_pause()

    def _send_log_piece(self) -> bool:
        """One piece of the log; False when nothing was left to send."""
        piece: Piece | None = self.ctx.logbook.take()
        if piece is None:
            return False
        self._log_sent_at = time.monotonic()
        try:
            self.reports.send("log", self.job_id, self.lease_token, offset=piece.offset, text=piece.text)
        except (ServerUnavailable, LeaseLostError, Conflict, NotFound):
            raise  # sent again (the same piece) at the retry, or the job is over
        except Exception:
            log.exception("job %s: the server refused a piece of the log; dropping it", self.job_id)
        self.ctx.logbook.sent(piece)
        return True

    def _flush_log(self) -> None:
        """Before the final report: every line the job wrote, its unended lines too."""
        self.ctx.logbook.end()
        while not self.finished.is_set() and self._send_log_piece():
            pass

    def _send(self, report: Report) -> None:
        if report.final:
            self._flush_log()
        if report.kind == "fail" and self._checkpoint_unsent():
            # the checkpoint a failing handler just took is what a retry resumes from
            self._flush_checkpoint()
            if self.finished.is_set():
                return
        self.reports.send(report.kind, self.job_id, self.lease_token, **report.fields)

    def _flush_checkpoint(self) -> None:
        try:
            self._beat()
        except CheckpointRefused as refused:  # the failure goes on being reported; the refusal is logged
            log.error("job %s: the server refused the last checkpoint: %s", self.job_id, refused.error)
            self._sent_checkpoint_version, _ = self.ctx.pending_checkpoint()

    def _checkpoint_unsent(self) -> bool:
        version, _ = self.ctx.pending_checkpoint()
        return version != self._sent_checkpoint_version

    def _beat(self) -> None:
        _, fields = self.ctx.snapshot()
        send = {key: value for key, value in fields.items() if value is not None}
        output_version = self.ctx.output.version
        if output_version != self._sent_output_version:
            send["output"] = self.ctx.output.text()
        checkpoint_version, checkpoint = self.ctx.pending_checkpoint()
        if checkpoint_version != self._sent_checkpoint_version:
            send["checkpoint"] = checkpoint
        sent_at = time.monotonic()
        try:
            answer = self.reports.send("heartbeat", self.job_id, self.lease_token, **send)
        except (ServerUnavailable, LeaseLostError, Conflict, NotFound):
            raise
        except Exception as error:
            if "checkpoint" in send:  # the server refused the checkpoint: the open steps fail in phase "record"
                raise CheckpointRefused(error) from error
            raise
        self._sent_output_version = output_version
        self._sent_checkpoint_version = checkpoint_version
        self.ctx.renew_lease(self.lease.renewed(sent_at))
        if answer.get("cancel_requested"):
            self._cancel()

    def _lost(self, error: Exception) -> None:
        status = getattr(error, "status", None)
        if not self._cancelled:
            if status == "cancelled":
                self._cancel()
            else:  # failed, queued again, …: stopped and confirmed as a cancellation is
                self._cancel(StopReason(LEASE_LOST, f"lease lost: the job is now {status}"), Outcome.LEASE_LOST)
            return
        # The confirmation itself came too late: the monitor released the lease, or it ran out.
        log.info("job %s: the stop was not confirmed (the job is now %s)", self.job_id, status)
        self.stop(StopReason(CANCEL, "cancelled") if status == "cancelled" else StopReason(LEASE_LOST, "lease lost"))
        self._close(self._stopped_outcome)

    def _cancel(self, reason: StopReason | None = None, outcome: Outcome = Outcome.CANCELLED) -> None:
        """Stop the job the server ended, report nothing more about it, and confirm once it has stopped."""
        reason = reason or StopReason(CANCEL, "cancelled")
        log.info("job %s: %s; stopping it", self.job_id, reason.message)
        with self._lock:
            self._outbox.clear()
            self._final_queued = True  # no heartbeat, step or outcome any more
            self._cancelled = True
            self._stopped_outcome = outcome
            confirm = self._handler_ended
        self.stop(reason)
        if confirm:
            self._queue_stopped()

    def _close(self, outcome: str) -> None:
        """Nothing more may be reported: the server has moved on without us."""
        with self._lock:
            self._outbox.clear()
            self._final_queued = True
        self.outcome = outcome
        self.finished.set()

    def _bookkeeping_failed(self, phase: str, what: str, error: Exception) -> None:
        reason = StopReason(ERROR, _clip(f"worker could not report {what}: {describe(error)}"), phase=phase)
        # The handler thread (or, if it ignores the stop, the abandon check) turns
        # this into the failed steps and the final report.
        self.stop(reason)

    def _final_refused(self, report: Report, error: Exception) -> None:
        """The server refused the final report itself: fall back to a minimal failure, once."""
        if report.fallback:
            log.error(
                "job %s: the server refused the final report (%s); leaving it to the monitor",
                self.job_id,
                describe(error),
            )
            self._close("unreported")
            return
        with self._lock:
            self._outbox.appendleft(
                Report(
                    "fail",
                    {
                        "error": _clip(f"worker could not report the outcome ({report.kind}): {describe(error)}"),
                        "retryable": True,
                        "interrupted": bool(report.fields.get("interrupted")),
                    },
                    fallback=True,
                )
            )

    def _check_deadline(self, now: float) -> None:
        if self._deadline is not None and now >= self._deadline and self.ctx.stop_reason is None:
            log.info("job %s: timed out after %s s; stopping it", self.job_id, _seconds(self.timeout_s or 0))
            self.stop(StopReason(TIMEOUT, f"timed out after {_seconds(self.timeout_s or 0)} s", phase="timeout"))

    def _lease_stop_at(self) -> float | None:
        """When to stop the job so its commands are dead (SIGKILL after the grace) before the lease ends."""
        if self.lease.until is None or self.finished.is_set():
            return None
        return self.lease.until - stop_lead_s(self.lease.lease_s or 0, self.kill_grace)

    def _check_lease(self, now: float) -> None:
        stop_at = self._lease_stop_at()
        if stop_at is None or now < stop_at or self.ctx.stop_reason is not None:
            return
        message = f"the server could not renew the job's {_seconds(self.lease.lease_s or 0)} s lease; stopped before it ran out"
        log.warning("job %s: %s; stopping it", self.job_id, message)
        self.stop(StopReason(ERROR, message, phase="lease"))

    def _check_abandoned(self, now: float) -> None:
        """A handler that ignored the stop past the grace: report for it and let its thread go."""
        if self._stop_requested_at is None or now < self._stop_requested_at + self.kill_grace + ABANDON_AFTER_S:
            return
        if self._cancelled and not self._handler_ended and not self.finished.is_set():
            log.warning(
                "job %s: the handler ignored the cancellation for %.1f s; not confirming it",
                self.job_id,
                now - self._stop_requested_at,
            )
            self._close(self._stopped_outcome)
            return
        if self._final_queued:
            return
        reason = self.ctx.stop_reason
        if reason is None or not reason.reported:
            return
        log.warning(
            "job %s: the handler ignored the stop for %.1f s; reporting without it",
            self.job_id,
            now - self._stop_requested_at,
        )
        self._queue_final_for(reason)
