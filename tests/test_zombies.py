"""Zombies and races against a real server: a paused worker that wakes after its
job was reaped and re-run changes nothing; double clicks, a cancel racing a
complete and two operators end in one well-defined state with every event kept."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from functools import partial

import pytest
import requests

from webapp import jobs
from webapp.store.extensions import db

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job
from tests.support.server import running_server
from tests.support.worker_process import launch_worker, wait_for

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}


def at_once(*calls):
    """Run the calls in threads released together; their answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            answers[index] = call()
        except BaseException as error:  # handed to the test below, not lost in the thread
            answers[index] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return answers


def fresh(job_id: int):
    db.session.rollback()
    return jobs.get_job(job_id)


def actions_of(job_id: int) -> list[str]:
    db.session.rollback()
    return [event.action for event in jobs.events_of(job_id) if event.kind == "status"]


def test_a_force_start_double_click_queues_the_job_once(server):
    for _ in range(5):
        job_id = make_job("failed").id
        url = f"{server.url}/api/jobs/{job_id}/force-start"
        post = partial(requests.post, url, json={}, timeout=10)
        first, second = at_once(post, post)
        assert sorted([first.status_code, second.status_code]) == [200, 409]
        assert actions_of(job_id).count("force_start") == 1
        assert fresh(job_id).status == "queued"


def test_a_cancel_racing_a_complete_ends_in_the_winners_state_with_one_event(server):
    for _ in range(8):
        job = make_job("running")
        job_id, token = job.id, job.lease_token
        cancel = partial(requests.post, f"{server.url}/api/jobs/{job_id}/cancel", json={}, timeout=10)
        complete = partial(
            requests.post,
            f"{server.url}/api/internal/jobs/{job_id}/complete",
            headers=KEY,
            json={"lease_token": token, "result": {"done": True}},
            timeout=10,
        )
        cancelled, completed = at_once(cancel, complete)
        assert sorted([cancelled.status_code, completed.status_code]) == [200, 409]
        winner = "cancelled" if cancelled.status_code == 200 else "completed"
        final = fresh(job_id)
        assert final.status == winner
        assert actions_of(job_id)[-1] == ("cancel" if winner == "cancelled" else "complete")
        assert sum(action in ("cancel", "complete") for action in actions_of(job_id)) == 1
        loser = completed if winner == "cancelled" else cancelled
        assert loser.json()["status"] == winner
        assert (final.result is not None) == (winner == "completed")


def test_two_operators_acting_at_once_leave_one_change_and_tell_the_other(server):
    for _ in range(5):
        job_id = make_job("queued").id
        cancel = partial(requests.post, f"{server.url}/api/jobs/{job_id}/cancel", json={}, timeout=10)
        fail = partial(requests.post, f"{server.url}/api/jobs/{job_id}/mark-failed", json={"reason": "x"}, timeout=10)
        cancelled, failed = at_once(cancel, fail)
        assert sorted([cancelled.status_code, failed.status_code]) == [200, 409]
        winner = "cancelled" if cancelled.status_code == 200 else "failed"
        assert fresh(job_id).status == winner
        assert actions_of(job_id) == ["create", "cancel" if winner == "cancelled" else "fail"]


@pytest.fixture
def monitored_server(app, database_url, tmp_path):
    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_MONITOR="on",
        JOBWARDEN_MONITOR_INTERVAL="0.5",
        # Long enough that a live worker's heartbeats, 0.2 s apart, survive a loaded machine's
        # stalls (a successor taken for dead would fail the job it should complete).
        JOBWARDEN_HEARTBEAT_TIMEOUT="3",
        JOBWARDEN_RETRY_BASE_S="0.1",
        JOBWARDEN_RETRY_MAX_S="0.5",
    ) as running:
        yield running


def start_worker(server_url: str, worker_id: str, log_path) -> subprocess.Popen:
    options = ("--types", "test.step_sleep", "--heartbeat-interval", "0.2", "--poll-interval", "0.1", "--grace", "1")
    return launch_worker(
        server_url, log_path, *options, "--worker-id", worker_id, handlers=("tests.support.worker_handlers",)
    )


def test_a_paused_worker_resumed_after_its_job_was_reaped_and_rerun_changes_nothing(monitored_server, tmp_path):
    job = jobs.create_job(type="test.step_sleep", payload={"seconds": 2}, max_attempts=2)
    zombie = start_worker(monitored_server.url, "zombie", tmp_path / "zombie.log")
    successor = None
    try:
        wait_for(lambda: fresh(job.id).status == "running", 20, "the first worker to run the job")
        os.killpg(zombie.pid, signal.SIGSTOP)
        wait_for(lambda: jobs.attempts_of(job.id)[0].outcome == "orphaned", 20, "the monitor to reap the attempt")
        successor = start_worker(monitored_server.url, "successor", tmp_path / "successor.log")
        logs = tuple(tmp_path / name for name in ("server.log", "successor.log", "zombie.log"))
        wait_for(lambda: fresh(job.id).status == "completed", 30, "the second worker to complete the job", logs=logs)
        os.killpg(zombie.pid, signal.SIGCONT)
        wait_for(
            lambda: "lease lost" in (tmp_path / "zombie.log").read_text(), 20, "the zombie to learn it lost the lease"
        )
        time.sleep(1.0)  # room for any late call of the zombie's to land (none may change anything)
        final = fresh(job.id)
        assert (final.status, final.worker_id, final.attempt) == ("completed", "successor", 2)
        assert [(a.worker_id, a.outcome) for a in jobs.attempts_of(job.id)] == [
            ("zombie", "orphaned"),
            ("successor", "completed"),
        ]
        completes = [e for e in jobs.events_of(job.id) if e.action == "complete"]
        assert [e.actor for e in completes] == ["worker:successor"]
        steps = [(s["attempt"], s["status"]) for s in jobs.steps_of(job.id)]
        assert (2, "completed") in steps and (1, "completed") not in steps
    finally:
        for process in (zombie, successor):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
