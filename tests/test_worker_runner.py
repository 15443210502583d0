"""The worker as users run it: `python -m webapp worker` against a real server
on loopback, running real subprocesses, checked in the real store."""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from webapp import jobs
from webapp.store.extensions import db
from webapp.store.models import Job, JobEvent, Worker
from webapp.worker import demo
from webapp.worker.handlers import Registry
from webapp.worker.runner import CLAIM_WAIT_S, MIN_CLAIM_GAP_S, WorkerRunner, WorkerSettings, types_label

from tests.conftest import INTERNAL_KEY
from tests.support.processes import alive
from tests.support.server import running_server
from tests.support.worker_process import launch_worker, wait_for

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

HEARTBEAT = 0.2


@pytest.fixture
def server(app, database_url, tmp_path):
    """A real server whose retry backoff is short, so retries show within a test; it logs each request."""
    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_RETRY_BASE_S="0.2",
        JOBWARDEN_RETRY_MAX_S="1",
        GUNICORN_CMD_ARGS="--access-logfile -",
    ) as running:
        yield running


class WorkerProcess:
    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.process = process
        self.log_path = log_path

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        return self.process.wait(timeout=timeout)

    @property
    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def start_worker(server, tmp_path) -> Callable[..., WorkerProcess]:
    started: list[WorkerProcess] = []

    def start(*options: str, heartbeat: float = HEARTBEAT, grace: float = 1.0) -> WorkerProcess:
        number = len(started) + 1
        log_path = tmp_path / f"worker{number}.log"
        process = launch_worker(
            server.url,
            log_path,
            *("--heartbeat-interval", str(heartbeat), "--poll-interval", "0.1", "--grace", str(grace)),
            *("--retry-max", "0.5", "--worker-id", f"w{number}"),
            *options,
        )
        worker = WorkerProcess(process, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.signal(signal.SIGTERM)
            worker.signal(signal.SIGTERM)  # stop at once, killing its commands
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.wait()


def job(job_id: int) -> Job:
    db.session.rollback()
    return jobs.get_job(job_id)


def status_is(job_id: int, *statuses: str) -> Callable[[], bool]:
    return lambda: job(job_id).status in statuses


def attempts(job_id: int):
    db.session.rollback()
    return jobs.attempts_of(job_id)


def step_events(job_id: int) -> list[dict]:
    db.session.rollback()
    return [
        {**e.data, "attempt": e.attempt}
        for e in db.session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "step").order_by(JobEvent.id)
        )
    ]


def pid_in_output(job_id: int, label: str) -> int:
    """A pid the job's command printed (`label N`), read from the output its heartbeats carried."""

    def found():
        for attempt in attempts(job_id):
            match = re.search(rf"{label} (\d+)", attempt.output_tail or "")
            if match:
                return int(match.group(1))
        return None

    return wait_for(found, what=f"'{label}' in the output of job {job_id}")


def nothing_live() -> bool:
    db.session.rollback()
    return not db.session.scalars(select(Job).where(Job.status.in_(["claimed", "running"]))).first()


# --- running jobs -------------------------------------------------------------------------


def test_a_noop_job_completes_with_its_result(start_worker):
    created = jobs.create_job(type="demo.noop")
    start_worker()
    wait_for(status_is(created.id, "completed"), what="completed")
    assert job(created.id).result == {"ok": True}
    assert [a.outcome for a in attempts(created.id)] == ["completed"]


def test_the_worker_registers_itself_with_its_types_and_concurrency(start_worker):
    start_worker("--concurrency", "3", "--types", "demo.noop,demo.sleep")
    registered = wait_for(lambda: db.session.get(Worker, "w1"), what="the worker row")
    assert (registered.concurrency, registered.types, registered.pid is not None) == (
        3,
        ["demo.noop", "demo.sleep"],
        True,
    )


def test_a_command_that_exits_1_fails_the_job_with_the_exit_code_and_its_stderr(start_worker):
    created = jobs.create_job(type="demo.crash", max_attempts=1)
    start_worker()
    wait_for(status_is(created.id, "failed"), what="failed")
    failed = job(created.id)
    (attempt,) = attempts(created.id)
    assert (failed.exit_code, failed.last_error) == (1, "exited with code 1")
    assert "crash: something broke" in attempt.output_tail and "starting" in attempt.output_tail


def test_output_is_sent_with_heartbeats_while_the_command_runs(start_worker):
    created = jobs.create_job(type="demo.command_sleep", payload={"seconds": 30})
    start_worker()
    assert pid_in_output(created.id, "pid")
    assert job(created.id).status == "running"


def test_a_job_of_a_type_without_a_handler_fails_at_once_with_a_clear_error(start_worker):
    created = jobs.create_job(type="nobody.knows", max_attempts=3)
    start_worker("--types", "*")
    wait_for(status_is(created.id, "failed"), what="failed")
    assert job(created.id).last_error.startswith("no handler for job type 'nobody.knows' on worker w1")


def test_a_failed_attempt_is_retried_after_a_backoff_and_the_retry_succeeds(start_worker):
    created = jobs.create_job(type="demo.flaky", max_attempts=2)
    start_worker()
    wait_for(status_is(created.id, "completed"), what="completed")
    first, second = attempts(created.id)
    assert (first.outcome, first.error) == ("failed", "RuntimeError: flaky: the first attempt always fails")
    assert second.outcome == "completed"
    # The server's backoff (0.2 s base, ±25 %) held the retry back.
    assert (second.claimed_at - first.finished_at).total_seconds() >= 0.15
    assert job(created.id).result == {"attempt": 2}


def test_slots_limit_how_many_jobs_run_at_once(start_worker):
    created = [jobs.create_job(type="demo.sleep", payload={"seconds": 0.5}) for _ in range(5)]
    start_worker("--concurrency", "2")
    most = 0

    def all_done():
        nonlocal most
        live = db.session.scalars(select(Job).where(Job.status.in_(["claimed", "running"]))).all()
        most = max(most, len(live))
        return all(job(c.id).status == "completed" for c in created)

    wait_for(all_done, what="all five completed")
    assert most == 2


def test_a_worker_sends_the_reports_of_its_jobs_together(server, start_worker):
    created = [jobs.create_job(type="demo.sleep", payload={"seconds": 1}) for _ in range(6)]
    start_worker("--concurrency", "3")
    wait_for(lambda: all(job(c.id).status == "completed" for c in created), what="all six completed")
    calls = re.findall(r'"POST /api/internal/(\S+) ', server.log_path.read_text())
    assert {call for call in calls if call.startswith("jobs/")} == {"jobs/claim"}
    # Each job: a start, a complete and at least 4 heartbeats (1 s at 0.2 s, the first
    # after 0.1 s at the earliest). One request each would be 36 or more; three jobs at
    # a time share theirs (about 20).
    assert 0 < calls.count("reports") < 6 * 5
    assert [a.outcome for c in created for a in attempts(c.id)] == ["completed"] * 6


def test_after_a_quick_claim_that_found_nothing_the_waiting_claim_goes_out_at_once():
    """Between jobs a long-polling worker is never out of a claim for a pause: a job
    created then would wait for the gap and a whole round trip (issue 14 pickup)."""
    runner = WorkerRunner(WorkerSettings(server="http://127.0.0.1:9", internal_key=INTERNAL_KEY), Registry())
    assert runner._pause_after(0.0, claimed=0) == 0.0
    # Answers that come back at once with jobs, or a wait that ran out, keep the gap: no busy loop.
    assert MIN_CLAIM_GAP_S * 0.5 < runner._pause_after(0.0, claimed=2) < MIN_CLAIM_GAP_S * 1.5
    assert MIN_CLAIM_GAP_S * 0.5 < runner._pause_after(CLAIM_WAIT_S, claimed=0) < MIN_CLAIM_GAP_S * 1.5
    polling = WorkerRunner(
        WorkerSettings(server="http://127.0.0.1:9", internal_key=INTERNAL_KEY, claim_wait=0, poll_interval=2.0),
        Registry(),
    )
    assert 1.5 < polling._pause_after(0.0, claimed=0) < 2.5


def test_jobs_a_claim_brought_back_as_a_signal_came_are_handed_back_not_left_claimed(server, monkeypatch):
    """A signal that lands while a waiting claim's answer, with a job in it, is on its way:
    the claim is hung up half-way, the answer still read, and the job queued again at once
    (before, the read was abandoned and the job sat `claimed` until the monitor's timeout)."""
    assert threading.current_thread() is threading.main_thread()  # signals reach this thread
    created = jobs.create_job(type="demo.noop")
    signalled = threading.Event()
    plain_getresponse = http.client.HTTPConnection.getresponse

    def signal_then_read(connection, *args, **kwargs):
        # The claim's own connection is plain http.client (requests' is urllib3's subclass), and
        # the claim is sent from the main thread (the presence line, plain too, from its own).
        is_claim = (
            type(connection) is http.client.HTTPConnection and threading.current_thread() is threading.main_thread()
        )
        if is_claim and not signalled.is_set():
            signalled.set()
            # Once the server has claimed the job and is answering: a claim hung up before it
            # looks claims nothing (tests/test_claim_wait.py).
            wait_for(lambda: job(created.id).status != "queued", what="the server to claim the job")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.3)
        return plain_getresponse(connection, *args, **kwargs)

    monkeypatch.setattr(http.client.HTTPConnection, "getresponse", signal_then_read)
    runner = WorkerRunner(
        WorkerSettings(server=server.url, internal_key=INTERNAL_KEY, types=["demo.noop"], grace=1.0),
        demo.registry,
    )
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    backstop = threading.Timer(10, os.kill, args=(os.getpid(), signal.SIGINT))  # never hang the suite
    backstop.start()
    try:
        runner.install_signal_handlers()
        assert runner.run() == 0
    finally:
        backstop.cancel()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert signalled.is_set()
    time.sleep(0.5)  # whatever the server did with the claim has landed
    handed_back = job(created.id)
    assert (handed_back.status, handed_back.worker_id) == ("queued", None)
    assert [a.outcome for a in attempts(created.id)] == ["interrupted"]


def test_the_log_names_the_types_a_worker_claims_and_an_empty_list_claims_none():
    assert (types_label(None), types_label(["a", "b"])) == ("any", "a, b")
    assert types_label([]).startswith("none")


# --- stopping jobs ---------------------------------------------------------------------------


def test_cancel_reaches_the_process_within_one_heartbeat_and_no_grandchild_survives(start_worker):
    created = jobs.create_job(type="test.family")
    start_worker("--heartbeat-interval", "0.5")
    leader, grandchild = pid_in_output(created.id, "pid"), pid_in_output(created.id, "grandchild")

    began = time.monotonic()
    jobs.cancel_job(created.id)
    wait_for(lambda: not alive(leader) and not alive(grandchild), what="the processes to be gone")

    assert time.monotonic() - began < 0.5 + 1.0  # one heartbeat, plus the stop itself
    assert job(created.id).status == "cancelled"


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(start_worker):
    created = jobs.create_job(type="demo.hang")
    worker = start_worker("--kill-grace", "1")
    pid = pid_in_output(created.id, "pid")

    began = time.monotonic()
    jobs.cancel_job(created.id)
    wait_for(lambda: not alive(pid), what="the hanging process to be killed")

    assert time.monotonic() - began >= 1.0
    wait_for(lambda: "ignored SIGTERM" in worker.log, what="the SIGKILL in the worker's log")


def test_a_job_past_its_timeout_is_killed_and_failed_as_timed_out(start_worker):
    created = jobs.create_job(type="demo.command_sleep", payload={"seconds": 60}, timeout_s=3, max_attempts=1)
    start_worker()
    pid = pid_in_output(created.id, "pid")
    wait_for(status_is(created.id, "failed"), what="failed")
    assert job(created.id).last_error == "timed out after 3 s"
    assert not alive(pid)


def test_the_worker_is_free_for_the_next_job_after_a_cancel(start_worker):
    first = jobs.create_job(type="demo.command_sleep", payload={"seconds": 60})
    start_worker()
    wait_for(status_is(first.id, "running"), what="running")
    jobs.cancel_job(first.id)
    second = jobs.create_job(type="demo.noop")
    wait_for(status_is(second.id, "completed"), what="the next job completed")


# --- steps ----------------------------------------------------------------------------------------


def test_a_pipeline_reports_each_step_started_and_completed_with_its_attempt(start_worker):
    created = jobs.create_job(type="demo.pipeline", payload={"seconds_per_step": 0})
    start_worker()
    wait_for(status_is(created.id, "completed"), what="completed")
    assert [(e["name"], e["event"], e["attempt"]) for e in step_events(created.id)] == [
        ("download", "started", 1),
        ("download", "completed", 1),
        ("transcode", "started", 1),
        ("transcode", "completed", 1),
        ("upload", "started", 1),
        ("upload", "completed", 1),
    ]


def test_a_step_that_raises_is_reported_failed_and_the_job_fails_in_that_step(start_worker):
    created = jobs.create_job(
        type="demo.pipeline", payload={"seconds_per_step": 0, "fail_step": "transcode"}, max_attempts=1
    )
    start_worker()
    wait_for(status_is(created.id, "failed"), what="failed")
    failed_step = step_events(created.id)[-1]
    assert (failed_step["name"], failed_step["event"], failed_step["attempt"], failed_step["phase"]) == (
        "transcode",
        "failed",
        1,
        "run",
    )
    assert failed_step["error"] == "RuntimeError: transcode failed (asked to by the payload)"
    (attempt,) = attempts(created.id)
    assert attempt.step == "transcode"
    assert job(created.id).last_error == (
        "step 'transcode' failed (run): RuntimeError: transcode failed (asked to by the payload)"
    )


def test_a_cancellation_mid_step_is_not_reported_as_a_step_failure(start_worker):
    created = jobs.create_job(type="test.step_sleep", payload={"seconds": 60})
    start_worker()
    wait_for(lambda: [e["event"] for e in step_events(created.id)] == ["started"], what="the step to start")
    jobs.cancel_job(created.id)
    follower = jobs.create_job(type="demo.noop")
    wait_for(status_is(follower.id, "completed"), what="the worker to move on")
    assert [e["event"] for e in step_events(created.id)] == ["started"]
    assert job(created.id).status == "cancelled"


def test_a_timeout_mid_step_reports_the_step_failed_and_the_job_failed_in_it(start_worker):
    created = jobs.create_job(type="test.step_sleep", payload={"seconds": 60}, timeout_s=1, max_attempts=1)
    start_worker()
    wait_for(status_is(created.id, "failed"), what="failed")
    failed_step = step_events(created.id)[-1]
    assert (failed_step["name"], failed_step["event"], failed_step["phase"], failed_step["error"]) == (
        "upload",
        "failed",
        "timeout",
        "timed out after 1 s",
    )
    assert job(created.id).last_error == "step 'upload' failed (timeout): timed out after 1 s"


def test_a_handler_that_ignores_its_timeout_still_gets_its_step_and_job_failed(start_worker):
    created = jobs.create_job(type="test.stubborn", payload={"seconds": 20}, timeout_s=1, max_attempts=1)
    start_worker("--kill-grace", "0.5")
    wait_for(status_is(created.id, "failed"), what="failed")
    failed_step = step_events(created.id)[-1]
    assert (failed_step["name"], failed_step["event"], failed_step["phase"]) == ("grind", "failed", "timeout")
    assert job(created.id).last_error == "step 'grind' failed (timeout): timed out after 1 s"


# --- the server unreachable ------------------------------------------------------------------------


def test_a_job_keeps_running_while_the_server_is_down_and_is_reported_when_it_is_back(server, start_worker):
    created = jobs.create_job(type="test.step_sleep", payload={"seconds": 2})
    worker = start_worker()
    wait_for(lambda: step_events(created.id), what="the step to start")
    server.stop()
    time.sleep(3)  # the step finishes while nobody can hear about it
    server.start()
    wait_for(status_is(created.id, "completed"), what="completed")
    assert "server unreachable" in worker.log and "retrying in" in worker.log
    assert [e["event"] for e in step_events(created.id)] == ["started", "completed"]
    assert job(created.id).result == {"uploaded": True}


def test_a_job_whose_lease_was_lost_while_the_server_was_down_is_stopped(server, start_worker):
    created = jobs.create_job(type="demo.command_sleep", payload={"seconds": 60})
    start_worker()
    pid = pid_in_output(created.id, "pid")
    server.stop()
    jobs.mark_failed(created.id, reason="operator gave up on it")  # as the monitor would, meanwhile
    time.sleep(1)
    assert alive(pid)  # it kept running while the worker could not ask
    server.start()
    wait_for(lambda: not alive(pid), what="the process to be stopped")
    assert job(created.id).last_error == "operator gave up on it"


# --- shutdown -------------------------------------------------------------------------------------


def test_sigterm_lets_a_running_job_finish_within_the_grace_and_exits_0(start_worker):
    created = jobs.create_job(type="demo.sleep", payload={"seconds": 2})
    worker = start_worker(grace=10)
    # Its handler runs (its progress came): `running` alone is set by the claim, before the
    # worker has the answer, and a job whose claim answer comes after the signal is handed back.
    wait_for(lambda: job(created.id).progress, what="the handler's progress")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert job(created.id).status == "completed"


def test_sigterm_stops_claiming(start_worker):
    worker = start_worker(grace=10)
    wait_for(lambda: db.session.get(Worker, "w1"), what="the worker to register")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    later = jobs.create_job(type="demo.noop")
    time.sleep(0.5)
    assert job(later.id).status == "queued"


def test_sigterm_hands_back_a_job_that_outlasts_the_grace(start_worker):
    created = jobs.create_job(type="demo.command_sleep", payload={"seconds": 60}, max_attempts=1)
    worker = start_worker(grace=0.5)
    pid = pid_in_output(created.id, "pid")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    handed_back = job(created.id)
    (attempt,) = attempts(created.id)
    assert (handed_back.status, attempt.outcome) == ("queued", "interrupted")
    assert handed_back.max_attempts >= 2  # the interrupted attempt did not use up the only one
    assert not alive(pid) and nothing_live()


def test_a_graceful_hand_back_costs_no_attempt_the_job_still_gets_all_its_tries(start_worker):
    created = jobs.create_job(type="test.sleeps_then_fails", payload={"seconds": 60}, max_attempts=2)
    deployed = start_worker(grace=0.3)
    wait_for(status_is(created.id, "running"), what="running")
    deployed.signal(signal.SIGTERM)  # a deploy: the job outlasts the grace and is handed back
    assert deployed.wait() == 0
    handed_back = job(created.id)
    assert (handed_back.status, handed_back.max_attempts - handed_back.attempt) == ("queued", 2)

    start_worker()  # the new release: both tries the job was created with still happen
    wait_for(status_is(created.id, "failed"), what="failed")
    assert [(a.number, a.outcome) for a in attempts(created.id)] == [
        (1, "interrupted"),
        (2, "failed"),
        (3, "failed"),
    ]


def test_a_second_signal_stops_at_once(start_worker):
    created = jobs.create_job(type="demo.hang")
    worker = start_worker(grace=60)
    pid = pid_in_output(created.id, "pid")
    worker.signal(signal.SIGTERM)
    time.sleep(0.3)
    began = time.monotonic()
    worker.signal(signal.SIGINT)
    assert worker.wait() == 1
    assert time.monotonic() - began < 4
    assert not alive(pid)
    assert job(created.id).status == "queued"


def test_a_payload_list_never_becomes_extra_arguments_the_job_fails_naming_the_field(start_worker, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    created = jobs.create_job(type="test.touch", payload={"file": [str(first), str(second)]})
    start_worker()

    wait_for(status_is(created.id, "failed"), what="failed")

    assert job(created.id).last_error == (
        "payload field 'file' is a list; a command-line placeholder takes one string or number"
    )
    assert not first.exists() and not second.exists()  # the command never ran


# --- what a command job ran, on its job page ---------------------------------------------------


def read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()


def test_the_job_page_and_the_api_show_the_argv_a_command_ran_escaped(server, start_worker):
    hostile = {"label": "<script>alert(1)</script>", "text": '"><img src=x onerror=alert(1)>'}
    command = jobs.create_job(type="test.echo_args", payload=hostile)
    python = jobs.create_job(type="demo.noop")
    start_worker()
    wait_for(lambda: all(job(c.id).status == "completed" for c in (command, python)), what="both completed")

    ran = [sys.executable, "-c", "import sys; print(sys.argv[1:])", f"--label={hostile['label']}", hostile["text"]]
    (attempt,) = json.loads(read(f"{server.url}/api/jobs/{command.id}"))["attempts"]
    assert attempt["argv"] == ran
    page = read(f"{server.url}/jobs/{command.id}")
    shown = re.search(r'<ol class="argv"[^>]*data-testid="job-argv">(.*?)</ol>', page, re.S)
    assert shown, page
    assert [html.unescape(arg) for arg in re.findall(r"<li><code>(.*?)</code></li>", shown.group(1), re.S)] == ran
    assert "<script>alert(1)" not in page and "<img src=x" not in page

    (python_attempt,) = json.loads(read(f"{server.url}/api/jobs/{python.id}"))["attempts"]
    assert python_attempt["argv"] is None
    assert 'data-testid="job-argv"' not in read(f"{server.url}/jobs/{python.id}")
