"""The job context's step bookkeeping and stopping, and the handler registry —
the parts of the worker that need no server."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from webapp.worker.context import CANCEL, ERROR, LEASE_LOST, TIMEOUT, JobContext, JobFailed, Stopped, StopReason
from webapp.worker.handlers import Registry, RegistryError, load, timeout_for


@pytest.fixture
def reports() -> list[dict]:
    return []


@pytest.fixture
def ctx(reports) -> JobContext:
    return JobContext(
        {"id": 7, "type": "t", "attempt": 2, "payload": {}},
        worker_id="w",
        report_step=lambda **fields: reports.append(fields),
        kill_grace=1.0,
    )


def test_a_step_reports_started_then_completed_with_its_attempt(ctx, reports):
    with ctx.step("download"):
        pass
    assert reports == [
        {"name": "download", "event": "started", "attempt": 2},
        {"name": "download", "event": "completed", "attempt": 2},
    ]


def test_a_step_whose_body_raises_reports_failed_with_name_attempt_phase_and_error(ctx, reports):
    with pytest.raises(ValueError), ctx.step("transcode"):
        raise ValueError("bad codec")
    assert reports[-1] == {
        "name": "transcode",
        "event": "failed",
        "attempt": 2,
        "phase": "run",
        "error": "ValueError: bad codec",
    }
    assert ctx.failed_step.name == "transcode"


def test_the_job_fails_in_the_innermost_step_the_error_went_through(ctx, reports):
    with pytest.raises(RuntimeError), ctx.step("outer"), ctx.step("inner"):
        raise RuntimeError("x")
    assert [(r["name"], r["event"]) for r in reports[-2:]] == [("inner", "failed"), ("outer", "failed")]
    assert ctx.failed_step.name == "inner"


def test_a_cancellation_inside_a_step_is_not_reported_as_a_step_failure(ctx, reports):
    with pytest.raises(Stopped), ctx.step("upload"):
        ctx.request_stop(StopReason(CANCEL, "cancelled"))
        ctx.check()
    assert [r["event"] for r in reports] == ["started"]


def test_a_lost_lease_inside_a_step_is_not_reported_as_a_step_failure(ctx, reports):
    with pytest.raises(Stopped), ctx.step("upload"):
        ctx.request_stop(StopReason(LEASE_LOST, "lease lost"))
        ctx.sleep(5)
    assert [r["event"] for r in reports] == ["started"]


def test_a_step_that_finished_after_a_bookkeeping_failure_reports_failed_not_completed(ctx, reports):
    with pytest.raises(Stopped), ctx.step("upload"):
        # The handler never looks; the worker's heartbeat failed meanwhile.
        ctx.request_stop(StopReason(ERROR, "worker could not report the heartbeat: 400", phase="heartbeat"))
    assert reports[-1] == {
        "name": "upload",
        "event": "failed",
        "attempt": 2,
        "phase": "heartbeat",
        "error": "worker could not report the heartbeat: 400",
    }


def test_a_timeout_inside_a_step_reports_the_step_failed_with_phase_timeout(ctx, reports):
    with pytest.raises(Stopped), ctx.step("transcode"):
        ctx.request_stop(StopReason(TIMEOUT, "timed out after 3 s", phase="timeout"))
        ctx.progress(50)
    assert reports[-1]["phase"] == "timeout" and reports[-1]["error"] == "timed out after 3 s"


def test_no_step_starts_once_the_job_is_stopping(ctx, reports):
    ctx.request_stop(StopReason(TIMEOUT, "timed out after 1 s", phase="timeout"))
    with pytest.raises(Stopped), ctx.step("late"):
        pass
    assert reports == []


def test_sleep_wakes_as_soon_as_the_job_is_stopped(ctx):
    threading.Timer(0.1, ctx.request_stop, [StopReason(CANCEL, "cancelled")]).start()
    began = time.monotonic()
    with pytest.raises(Stopped):
        ctx.sleep(30)
    assert time.monotonic() - began < 2


def test_a_command_run_from_a_handler_is_terminated_when_the_job_stops(ctx):
    threading.Timer(0.5, ctx.request_stop, [StopReason(CANCEL, "cancelled")]).start()
    began = time.monotonic()
    with pytest.raises(Stopped):
        ctx.run([sys.executable, "-c", "import time; time.sleep(30)"])
    assert time.monotonic() - began < 5


def test_a_cancellation_replaces_an_earlier_stop_reason_but_not_the_reverse(ctx):
    ctx.request_stop(StopReason(TIMEOUT, "timed out after 1 s"))
    ctx.request_stop(StopReason(CANCEL, "cancelled"))
    ctx.request_stop(StopReason(ERROR, "later"))
    assert ctx.stop_reason.kind == CANCEL


def test_progress_outside_0_to_100_is_refused(ctx):
    with pytest.raises(ValueError, match="between 0 and 100"):
        ctx.progress(101)


def test_a_heartbeat_snapshot_carries_progress_stage_and_the_innermost_step(ctx):
    ctx.progress(40)
    ctx.stage("encoding")
    with ctx.step("outer"), ctx.step("inner"):
        _, fields = ctx.snapshot()
    assert fields == {"progress": 40.0, "stage": "encoding", "current_step": "inner"}


def test_log_lines_go_into_the_output(ctx):
    ctx.log("fetched", 3, "files")
    assert ctx.output.text().endswith("fetched 3 files\n")


# --- the registry ------------------------------------------------------------------------


def test_the_demo_module_registers_every_demo_type():
    assert {"demo.noop", "demo.sleep", "demo.pipeline", "demo.flaky", "demo.crash", "demo.hang"} <= set(
        load(["webapp.worker.demo"]).types
    )


def test_a_module_without_a_registry_is_refused_by_name():
    with pytest.raises(RegistryError, match="'webapp.worker.process'"):
        load(["webapp.worker.process"])


def test_a_module_that_does_not_exist_is_refused_by_name():
    with pytest.raises(RegistryError, match="'no_such_handlers'"):
        load(["no_such_handlers"])


def test_two_handlers_for_one_type_are_refused():
    registry = Registry()
    registry.command("backup", ["true"])
    with pytest.raises(RegistryError, match="'backup'"):
        registry.command("backup", ["false"])


def test_a_command_given_as_one_string_is_refused_so_no_shell_is_ever_needed():
    with pytest.raises(RegistryError, match="no shell"):
        Registry().command("backup", "pg_dump mydb")  # type: ignore[arg-type]


def test_a_jobs_own_timeout_wins_over_its_types_default():
    registry = Registry()
    registry.command("slow", ["sleep", "1"], timeout_s=60)
    handler = registry.get("slow")
    assert timeout_for({"timeout_s": 5}, handler) == 5
    assert timeout_for({"timeout_s": None}, handler) == 60
    assert timeout_for({}, None) is None


# --- durable steps ---------------------------------------------------------------------------


def durable_ctx(reports: list[dict], **job) -> JobContext:
    return JobContext(
        {"id": 7, "type": "t", "attempt": 2, "payload": {}, **job},
        worker_id="w",
        report_step=lambda **fields: reports.append(fields),
        kill_grace=1.0,
    )


def test_a_durable_step_returns_its_result_as_the_store_gives_it_back(ctx, reports):
    assert ctx.step("fetch", lambda a, b=0: (a, b), 1, b=2) == [1, 2]  # a tuple comes back as JSON's list
    assert reports[-1] == {"name": "fetch", "event": "completed", "attempt": 2, "result": [1, 2]}


def test_a_stored_step_is_replayed_not_run(reports):
    ctx = durable_ctx(reports, step_results={"fetch": {"result": {"n": 1}, "attempt": 1}})
    ran = []
    assert ctx.step("fetch", lambda: ran.append(1)) == {"n": 1}
    assert ran == []
    assert reports == [{"name": "fetch", "event": "replayed", "attempt": 2, "result_attempt": 1}]


def test_a_step_name_used_twice_in_one_run_is_a_clear_error(ctx):
    ctx.step("fetch", lambda: 1)
    unique = "step 'fetch' already ran in this attempt: step names must be unique"
    with pytest.raises(ValueError, match=unique), ctx.step("fetch"):
        pass


def test_a_checkpoint_over_the_cap_fails_its_step_in_phase_record(ctx, reports):
    with pytest.raises(JobFailed), ctx.step("train"):
        ctx.checkpoint("x" * 70_000)
    assert (reports[-1]["name"], reports[-1]["event"], reports[-1]["phase"]) == ("train", "failed", "record")
    assert reports[-1]["error"] == "RecordFailed: the checkpoint is 70002 bytes as JSON; at most 65536 are stored"


def test_a_checkpoint_waits_for_the_next_heartbeat_and_names_the_open_step(ctx):
    with ctx.step("epoch 3"):
        ctx.checkpoint({"epoch": 3})
    assert ctx.pending_checkpoint() == (1, {"data": {"epoch": 3}, "step": "epoch 3"})


def test_last_checkpoint_is_what_an_earlier_attempt_stored(reports):
    assert durable_ctx(reports).last_checkpoint is None
    stored = {"at": "2026-01-01T00:00:00Z", "step": "e", "attempt": 1, "data": {"epoch": 5}}
    assert durable_ctx(reports, checkpoint=stored).last_checkpoint == {"epoch": 5}


def test_a_with_block_takes_no_arguments_or_retries(ctx):
    with pytest.raises(TypeError, match="need a function"):
        ctx.step("x", None, retries=2)


class PendingDelivery:
    """A result the server has not answered for yet."""

    def __init__(self):
        self.done = threading.Event()
        self.error = None
        self.withdrawn = False

    def withdraw(self) -> bool:
        self.withdrawn = True
        return True


def test_a_cancellation_while_a_result_is_being_recorded_reports_no_step_failure(reports):
    delivery = PendingDelivery()
    ctx = JobContext(
        {"id": 7, "type": "t", "attempt": 1},
        worker_id="w",
        kill_grace=1.0,
        report_step=lambda **fields: (reports.append(fields), delivery)[1],
    )
    threading.Timer(0.2, ctx.request_stop, [StopReason(CANCEL, "cancelled")]).start()
    with pytest.raises(Stopped):
        ctx.step("upload", lambda: "uploaded")
    assert [r["event"] for r in reports] == ["started", "completed"]


def test_a_result_never_recorded_within_the_timeout_is_withdrawn_and_fails_in_phase_record(reports):
    delivery = PendingDelivery()
    ctx = JobContext(
        {"id": 7, "type": "t", "attempt": 1},
        worker_id="w",
        kill_grace=1.0,
        report_step=lambda **fields: (reports.append(fields), delivery)[1],
    )
    ctx.record_timeout = 0.2
    with pytest.raises(JobFailed, match="the step ran but its result was not recorded"):
        ctx.step("upload", lambda: "uploaded")
    assert delivery.withdrawn
    assert (reports[-1]["event"], reports[-1]["phase"]) == ("failed", "record")
