"""/health tells the incident: a real worker killed with kill -9 under a real server
running the monitor is marked dead in the pass that orphans its job (not a heartbeat
timeout later, listed idle meanwhile), and the page does not say "Healthy" while its
orphaned job and its death are recent."""

from __future__ import annotations

import html
import os
import re
import signal

import pytest
import requests

from webapp import jobs

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job
from tests.support.server import running_server
from tests.support.worker_process import start_worker, stop_worker, wait_for

JOB_TIMEOUT_S = 2  # the job type's own heartbeat timeout …
WORKER_TIMEOUT_S = 60  # … far shorter than the workers' default


@pytest.fixture
def monitored_server(app, database_url, tmp_path):
    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_MONITOR="on",
        JOBWARDEN_MONITOR_INTERVAL="0.5",
        JOBWARDEN_HEARTBEAT_TIMEOUT=str(WORKER_TIMEOUT_S),
        JOBWARDEN_TYPE_TIMEOUTS=f'{{"demo.sleep": {JOB_TIMEOUT_S}}}',
    ) as server:
        yield server


def test_a_killed_worker_is_dead_when_its_job_is_orphaned_and_health_says_what_happened(monitored_server, tmp_path):
    job = jobs.create_job(type="demo.sleep", payload={"seconds": 120}, max_attempts=1)
    worker = start_worker(monitored_server.url, tmp_path / "worker.log", "w-killed", "--heartbeat-interval", "0.3")
    try:
        wait_for(lambda: jobs.get_job(job.id).status == "running", what="running")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        wait_for(lambda: jobs.get_job(job.id).status == "failed", timeout=JOB_TIMEOUT_S + 10, what="orphaned")
    finally:
        stop_worker(worker)

    health = requests.get(f"{monitored_server.url}/api/health", timeout=10).json()
    (listed,) = [w for w in health["workers"] if w["id"] == "w-killed"]
    assert listed["state"] == "gone" and listed["since_seen_s"] < WORKER_TIMEOUT_S  # dead at once, not idle
    notes = {note["kind"]: note for note in health["recent"]["notes"]}
    assert notes["orphaned"]["ids"] == [job.id]
    assert notes["worker_died"]["ids"] == ["w-killed"]
    assert health["recent"]["incident"] and health["healthy"]  # nothing stuck now, yet an incident

    page = requests.get(f"{monitored_server.url}/health", timeout=10).text
    summary = html.unescape(re.search(r'data-testid="health-summary">(.*?)</p>', page, re.S).group(1))
    assert "Healthy" not in summary and "see what happened" in summary
    row = re.search(r'<tr data-worker-id="w-killed">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r'data-testid="worker-state" data-state="gone">dead<', row)
    assert "idle" not in row
    story = re.search(r'data-testid="recent-story".*?</section>', page, re.S).group(0)
    assert f"#{job.id}" in story and "w-killed died in the last 15 min" in story
    assert '<h2 id="recent-title">Last 15 min</h2>' in story  # the window as its notes say it, not "15m 00s"


def test_a_failure_spike_is_an_incident_and_a_few_failures_are_not(client):
    for _ in range(4):
        make_job("failed")
    make_job("completed")
    assert client.get("/api/health").json["recent"]["notes"] == []
    make_job("failed")
    (note,) = client.get("/api/health").json["recent"]["notes"]
    assert (note["kind"], note["count"], note["severity"]) == ("failure_spike", 5, "incident")
    assert "Healthy" not in client.get("/health").get_data(as_text=True).split('data-testid="health-summary">')[1][:80]


def test_a_job_stopping_after_a_cancel_is_worth_seeing_until_its_worker_confirms(client):
    """/health does not say Healthy while an ended attempt may still run (one live copy)."""
    make_job("queued", type="demo.sleep")
    (claimed,) = jobs.claim_jobs("w1", batch_size=1)
    jobs.start_job(claimed.id, claimed.lease_token)
    jobs.cancel_job(claimed.id)
    (note,) = client.get("/api/health").json["recent"]["notes"]
    assert (note["kind"], note["ids"], note["severity"]) == ("stopping", [claimed.id], "incident")
    summary = client.get("/health").get_data(as_text=True).split('data-testid="health-summary">')[1][:120]
    assert "Healthy" not in summary
    confirm = client.post(
        f"/api/internal/jobs/{claimed.id}/stopped",
        json={"lease_token": claimed.lease_token, "attempt": claimed.attempt},
        headers={"Authorization": f"Bearer {INTERNAL_KEY}"},
    )
    assert confirm.status_code == 200
    assert client.get("/api/health").json["recent"]["notes"] == []
