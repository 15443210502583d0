"""A worker confirms the cancellations it carries out, so the monitor's "never
confirmed the cancellation" note appears only when the worker truly went silent.

The `stopped` call on the internal API (each database), then a real worker on a
real server: a job cancelled while it runs is stopped and confirmed, and a
monitor pass after the timeout leaves no note; a worker frozen with SIGSTOP
before it could confirm does get the note.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import timedelta

import pytest

from webapp import jobs, monitor
from webapp.domain.timeutil import utcnow
from webapp.jobs.cancellation import CONFIRMED
from webapp.store.extensions import db

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job
from tests.support.processes import alive
from tests.support.worker_process import launch_worker, wait_for

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}
UNCONFIRMED = "cancel_unconfirmed"


def stopped(client, job_id: int, **body):
    return client.post(f"/api/internal/jobs/{job_id}/stopped", json=body, headers=KEY)


def notes(job_id: int) -> list:
    db.session.rollback()  # see the server's commits
    return [event for event in jobs.events_of(job_id) if event.kind == "note"]


def past_the_timeout():
    return utcnow() + timedelta(hours=1)


# --- the internal API ---------------------------------------------------------------


def test_stopped_releases_a_cancelled_jobs_lease_and_notes_who_stopped_it(client):
    job = make_job("running")
    jobs.cancel_job(job.id)

    response = stopped(client, job.id, lease_token=job.lease_token, output="caught SIGTERM, cleaned up\n")

    assert response.status_code == 200
    db.session.expire_all()
    after = jobs.get_job(job.id)
    assert (after.status, after.lease_token, after.heartbeat_at) == ("cancelled", None, None)
    (note,) = notes(job.id)
    assert (note.action, note.actor, note.reason) == (
        CONFIRMED,
        "worker:factory-worker",
        "worker factory-worker stopped the cancelled job",
    )
    assert jobs.attempts_of(job.id)[0].output_tail == "caught SIGTERM, cleaned up\n"
    assert monitor.run_pass(now=past_the_timeout())["unconfirmed_cancellations"] == []
    assert [n.action for n in notes(job.id)] == [CONFIRMED]


def test_stopped_with_a_lease_that_is_no_longer_the_jobs_is_lease_lost_and_changes_nothing(client):
    job = make_job("running")
    token = job.lease_token
    jobs.cancel_job(job.id)
    monitor.run_pass(now=past_the_timeout())  # the monitor released the lease first

    response = stopped(client, job.id, lease_token=token)

    assert (response.status_code, response.json.get("error"), response.json.get("status")) == (
        409,
        "lease_lost",
        "cancelled",
    ), response.json
    assert [n.action for n in notes(job.id)] == [UNCONFIRMED]


def test_stopped_for_a_job_that_was_not_cancelled_is_refused(client):
    job = make_job("running")

    response = stopped(client, job.id, lease_token=job.lease_token)

    assert response.status_code == 409 and response.json["status"] == "running"
    db.session.expire_all()
    assert jobs.get_job(job.id).lease_token == job.lease_token and notes(job.id) == []


def test_stopped_for_an_unknown_job_is_404(client):
    assert stopped(client, 999_999, lease_token="x").status_code == 404


# --- a real worker -----------------------------------------------------------------


def start_worker(server_url: str, worker_id: str, tmp_path) -> tuple[subprocess.Popen, object]:
    log_path = tmp_path / f"{worker_id}.log"
    options = ("--worker-id", worker_id, "--heartbeat-interval", "0.2", "--poll-interval", "0.1", "--kill-grace", "1")
    return launch_worker(server_url, log_path, *options, handlers=("webapp.worker.demo",)), log_path


def command_pid(job_id: int) -> int | None:
    db.session.rollback()
    attempts = jobs.attempts_of(job_id)
    text = (attempts[-1].output_tail or "") if attempts else ""
    # Whole lines only: a heartbeat can carry the tail cut mid-line ("… pid" before its number).
    found = re.search(r"pid (\d+)\n", text)
    return int(found.group(1)) if found else None


def finish(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGCONT)
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_a_job_cancelled_while_it_runs_is_confirmed_and_gets_no_monitor_note(server, tmp_path):
    job = jobs.create_job(type="demo.hang")  # ignores SIGTERM: stopped only by the SIGKILL after the grace
    worker, log_path = start_worker(server.url, "w-confirms", tmp_path)
    try:
        pid = wait_for(lambda: command_pid(job.id), what="the command to run")
        jobs.cancel_job(job.id)
        wait_for(lambda: not alive(pid), what="the command to be stopped")
        wait_for(
            lambda: f"runner: job {job.id}: cancelled" in log_path.read_text(), what="the worker to finish the attempt"
        )

        result = monitor.run_pass(now=past_the_timeout())

        assert result["unconfirmed_cancellations"] == []
        assert [n.action for n in notes(job.id)] == [CONFIRMED]
        assert jobs.get_job(job.id).status == "cancelled"
    finally:
        finish(worker)


def test_a_worker_frozen_before_it_could_confirm_gets_the_monitor_note(server, tmp_path):
    job = jobs.create_job(type="demo.command_sleep", payload={"seconds": 60})
    worker, _ = start_worker(server.url, "w-frozen", tmp_path)
    try:
        pid = wait_for(lambda: command_pid(job.id), what="the command to run")
        os.kill(worker.pid, signal.SIGSTOP)
        jobs.cancel_job(job.id)

        result = monitor.run_pass(now=past_the_timeout())

        assert result["unconfirmed_cancellations"] == [job.id]
        assert [(n.action, n.reason) for n in notes(job.id)] == [
            (UNCONFIRMED, "worker w-frozen never confirmed the cancellation")
        ]
        os.kill(worker.pid, signal.SIGCONT)  # it wakes, stops the command, and its late confirmation changes nothing
        wait_for(lambda: not alive(pid), what="the woken worker to stop the command")
        time.sleep(1.0)
        assert [n.action for n in notes(job.id)] == [UNCONFIRMED]
    finally:
        finish(worker)
