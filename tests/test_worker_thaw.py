"""A worker frozen (SIGSTOP) past the heartbeat timeout is taken for gone and its job orphaned,
rightly; thawed (SIGCONT), it shows alive again within seconds, not when its held presence
request happens to be answered (up to PRESENCE_WAIT_S later). Its heartbeats alone never revive
it (tests/test_worker_liveness.py): the server's answer tells it that it is taken for gone and it
presents itself again. Its orphaned job stays fenced: the thawed attempt's reports are refused,
and the worker drops it and takes new work.

A real gunicorn running the monitor with short timeouts, a real `python -m webapp worker`."""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack

import pytest
import requests

from webapp import jobs

from tests.support.server import running_server
from tests.support.worker_process import start_worker, stop_worker, wait_for

pytestmark = pytest.mark.slow

TIMEOUT_S = 2.0
INTERVAL_S = 0.5
ALIVE_WITHIN_S = 5.0  # behavioural: the held presence alone would take up to PRESENCE_WAIT_S (20 s)


def state_of(server_url: str, worker_id: str) -> str | None:
    workers = requests.get(f"{server_url}/api/health", timeout=10).json()["workers"]
    return next((w["state"] for w in workers if w["id"] == worker_id), None)


@pytest.mark.parametrize("monitor", ["same replica", "other replica"])
def test_a_thawed_worker_shows_alive_at_once_and_its_orphaned_job_stays_fenced(app, database_url, tmp_path, monitor):
    """With the monitor on another replica, the worker's own server never saw the death: its
    registry still holds what it last wrote for the worker, and the row says otherwise."""
    logs = (tmp_path / "server.log", tmp_path / "worker.log")
    settings = {"JOBWARDEN_MONITOR_INTERVAL": str(INTERVAL_S), "JOBWARDEN_HEARTBEAT_TIMEOUT": str(TIMEOUT_S)}
    with ExitStack() as stack:
        here = "on" if monitor == "same replica" else "off"
        server = stack.enter_context(running_server(database_url, logs[0], JOBWARDEN_MONITOR=here, **settings))
        if monitor == "other replica":
            logs += (tmp_path / "monitor.log",)
            stack.enter_context(running_server(database_url, logs[2], JOBWARDEN_MONITOR="on", **settings))
        # Long enough to outlast the freeze, short enough to end (and report) soon after the thaw.
        frozen_job = jobs.create_job(type="demo.sleep", payload={"seconds": 6}, max_attempts=1)
        worker = start_worker(server.url, logs[1], "w-thawed", "--heartbeat-interval", "0.3")
        try:
            wait_for(lambda: jobs.get_job(frozen_job.id).status == "running", what="the job to run", logs=logs)
            wait_for(lambda: state_of(server.url, "w-thawed") == "alive", what="the worker registered", logs=logs)
            os.killpg(worker.pid, signal.SIGSTOP)
            wait_for(lambda: jobs.get_job(frozen_job.id).status == "failed", what="the job orphaned", logs=logs)
            wait_for(lambda: state_of(server.url, "w-thawed") == "gone", what="the worker gone", logs=logs)

            os.killpg(worker.pid, signal.SIGCONT)
            thawed_at = time.monotonic()
            wait_for(
                lambda: state_of(server.url, "w-thawed") == "alive",
                ALIVE_WITHIN_S,
                "the thawed worker alive",
                logs=logs,
            )
            assert time.monotonic() - thawed_at <= ALIVE_WITHIN_S

            # Fenced: the thawed attempt ends unseen (its reports refused), and the worker,
            # having dropped it, takes the next job on its only slot.
            next_job = jobs.create_job(type="demo.sleep", payload={"seconds": 0}, max_attempts=1)
            wait_for(lambda: jobs.get_job(next_job.id).status == "completed", 30, "the next job", logs=logs)
            assert jobs.get_job(next_job.id).worker_id == "w-thawed"
            after = jobs.get_job(frozen_job.id)
            assert after.status == "failed" and after.last_error.startswith(
                "orphaned: no heartbeat from worker w-thawed"
            )
            assert [a.outcome for a in jobs.attempts_of(frozen_job.id)] == ["orphaned"]
            assert state_of(server.url, "w-thawed") == "alive"
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
            stop_worker(worker)
