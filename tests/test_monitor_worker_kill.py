"""A real worker process killed with SIGKILL mid-job: its job is settled, with the reason.

A real gunicorn server (running the monitor in-process, short timeout and
interval) and a real `python -m webapp worker` on loopback; the worker's whole
process group is killed while the job runs. The server sees the worker's presence
drop (webapp.server.presence) and settles the job at once; a worker frozen with SIGSTOP
keeps its connection and is settled by the monitor. Either way the job must leave
`running` within heartbeat timeout + one interval (plus start-up slack).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from webapp import jobs

from tests.support.server import running_server
from tests.support.worker_process import launch_worker, wait_for

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

TIMEOUT_S = 2.0
INTERVAL_S = 0.5
SLACK_S = 3.0


def wait_for_status(job_id: int, statuses: set[str], timeout: float) -> str:
    return wait_for(
        lambda: (status := jobs.get_job(job_id).status) in statuses and status, timeout, f"job {job_id} {statuses}"
    )


@pytest.fixture
def monitored_server(app, database_url, tmp_path):
    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_MONITOR="on",
        JOBWARDEN_MONITOR_INTERVAL=str(INTERVAL_S),
        JOBWARDEN_HEARTBEAT_TIMEOUT=str(TIMEOUT_S),
    ) as server:
        yield server


def start_worker(server, worker_id: str, tmp_path) -> subprocess.Popen:
    options = ("--concurrency", "1", "--types", "demo.sleep", "--heartbeat-interval", "0.3", "--poll-interval", "0.1")
    log_path = tmp_path / f"{worker_id}.log"
    return launch_worker(server.url, log_path, *options, "--worker-id", worker_id, handlers=("webapp.worker.demo",))


def kill_mid_job(server, job_id: int, worker_id: str, tmp_path) -> float:
    """Run the job on a real worker, SIGKILL the worker's process group once it runs; returns when."""
    worker = start_worker(server, worker_id, tmp_path)
    try:
        wait_for_status(job_id, {"running"}, timeout=30)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    return time.monotonic()


DIED = "orphaned: worker w-killed died (its connection to the server dropped)"
SILENT = "orphaned: no heartbeat from worker w-killed since "


def settled_for_its_death(reason: str | None) -> bool:
    """The server saw the worker's presence connection drop (the usual way, tests/test_worker_death.py
    holds its speed), or — killed before that request reached a loaded server — the monitor found it silent."""
    return reason == DIED or (reason or "").startswith(SILENT)


def test_a_job_whose_worker_is_killed_fails_within_timeout_and_interval_with_the_reason(monitored_server, tmp_path):
    job = jobs.create_job(type="demo.sleep", payload={"seconds": 60}, max_attempts=1)

    killed_at = kill_mid_job(monitored_server, job.id, "w-killed", tmp_path)
    status = wait_for_status(job.id, {"failed", "queued"}, timeout=TIMEOUT_S + INTERVAL_S + SLACK_S)

    assert status == "failed"
    assert time.monotonic() - killed_at <= TIMEOUT_S + INTERVAL_S + SLACK_S
    after = jobs.get_job(job.id)
    assert settled_for_its_death(after.last_error)
    (event,) = [e for e in jobs.events_of(job.id) if e.actor in ("server", "monitor")]
    assert (event.from_status, event.to_status, event.reason) == ("running", "failed", after.last_error)


def test_a_job_whose_worker_is_frozen_is_failed_by_the_monitor_within_timeout_and_interval(monitored_server, tmp_path):
    job = jobs.create_job(type="demo.sleep", payload={"seconds": 60}, max_attempts=1)
    worker = start_worker(monitored_server, "w-frozen", tmp_path)
    try:
        wait_for_status(job.id, {"running"}, timeout=30)
        os.killpg(worker.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        status = wait_for_status(job.id, {"failed", "queued"}, timeout=TIMEOUT_S + INTERVAL_S + SLACK_S)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    assert status == "failed"
    assert time.monotonic() - frozen_at <= TIMEOUT_S + INTERVAL_S + SLACK_S
    after = jobs.get_job(job.id)
    assert after.last_error.startswith("orphaned: no heartbeat from worker w-frozen since ")
    (event,) = [e for e in jobs.events_of(job.id) if e.actor == "monitor"]
    assert (event.from_status, event.to_status, event.reason) == ("running", "failed", after.last_error)


def test_a_job_whose_worker_is_killed_is_requeued_when_it_has_attempts_left(monitored_server, tmp_path):
    job = jobs.create_job(type="demo.sleep", payload={"seconds": 60}, max_attempts=2)

    kill_mid_job(monitored_server, job.id, "w-killed", tmp_path)
    status = wait_for_status(job.id, {"failed", "queued"}, timeout=TIMEOUT_S + INTERVAL_S + SLACK_S)

    assert status == "queued"
    (attempt,) = jobs.attempts_of(job.id)
    assert (attempt.outcome, attempt.worker_id) == ("orphaned", "w-killed")
    assert settled_for_its_death(attempt.error)
