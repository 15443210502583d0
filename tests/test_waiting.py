"""`waiting` says why a queued job is not running, in the API and on the dashboard."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import queues
from webapp.store import transitions
from webapp.store.transaction import unit_of_work

from tests.conftest import INTERNAL_KEY


def serve_type_t(client) -> None:
    """A live worker takes type `t` (and no other): jobs of other types wait for a worker."""
    answer = client.post(
        "/api/internal/workers/heartbeat",
        json={"worker_id": "w", "types": ["t"]},
        headers={"Authorization": f"Bearer {INTERNAL_KEY}"},
    )
    assert answer.status_code == 200


def waiting_of(client, job_id: int) -> str | None:
    listed = {job["id"]: job["waiting"] for job in client.get("/api/jobs?limit=500").json["jobs"]}
    detail = client.get(f"/api/jobs/{job_id}").json["waiting"]
    assert listed[job_id] == detail
    return detail


def test_each_reason_a_queued_job_waits(client):
    serve_type_t(client)
    jobs.create_job(type="t", queue="gpu")
    queues.set_limits("gpu", {"concurrency": 1}, actor="test")
    queues.set_limits("api", {"key_concurrency": 1, "rate_limit": {"limit": 1, "period_s": 3600}}, actor="test")
    with unit_of_work():
        transitions.claim("w", batch_size=1)  # the gpu job: the queue's one slot

    full = jobs.create_job(type="t", queue="gpu")
    nobody = jobs.create_job(type="unserved")
    later = jobs.create_job(type="t")
    keyed_first = jobs.create_job(type="t", queue="api", concurrency_key="k")
    with unit_of_work():
        (claimed,) = transitions.claim("w", queues=["api"])
    assert claimed.id == keyed_first.id
    same_key = jobs.create_job(type="t", queue="api", concurrency_key="k")
    other_key = jobs.create_job(type="t", queue="api", concurrency_key="other")
    paused = jobs.create_job(type="t", queue="mail")
    queues.pause("mail", actor="test")

    assert waiting_of(client, full.id) == "concurrency"
    assert waiting_of(client, same_key.id) == "key_concurrency"
    assert waiting_of(client, other_key.id) == "rate_limit"
    assert waiting_of(client, paused.id) == "queue_paused"
    assert waiting_of(client, nobody.id) == "no_worker"
    assert waiting_of(client, later.id) is None
    assert waiting_of(client, claimed.id) is None

    page = client.get(f"/jobs/{full.id}").get_data(as_text=True)
    assert 'data-testid="job-waiting"' in page and "a free slot" in page
    table = client.get("/jobs").get_data(as_text=True)
    assert table.count('data-testid="waiting"') == 5
    # The table's one word ("concurrency") is said in full on hover, as the job page says it.
    row = table.split(f'data-job-id="{full.id}"')[1].split("</tr>")[0]
    assert 'title="Waiting for a free slot: its queue runs as many jobs as its concurrency allows"' in row, row


def test_a_job_due_later_waits_for_its_run_after(app, client):
    serve_type_t(client)
    job = jobs.create_job(type="t")
    with unit_of_work():
        (claimed,) = transitions.claim("w")
        transitions.transition(
            claimed.id,
            "retry",
            actor="test",
            lease_token=claimed.lease_token,
            values={"run_after": utcnow() + timedelta(hours=1), "lease_token": None},
        )
    assert waiting_of(client, job.id) == "run_after"
    row = client.get("/jobs").get_data(as_text=True).split(f'data-job-id="{job.id}"')[1].split("</tr>")[0]
    assert re.search(r'data-testid="waiting"[^>]*>runs <time [^>]*data-countdown>in (59m|1h)', row), row
    answer = client.get(f"/api/jobs/{job.id}").json
    assert answer["waiting_until"] == answer["run_after"]


def test_a_full_rate_window_says_when_it_next_has_room(client):
    """`waiting_until` is the moment the start that keeps the window full leaves it: with a
    limit of 2 and 3 starts in the window, the second oldest."""
    serve_type_t(client)
    queues.set_limits("api", {"rate_limit": {"limit": 2, "period_s": 3600}}, actor="test")
    for _ in range(2):
        jobs.create_job(type="t", queue="api")
    with unit_of_work():
        started = transitions.claim("w", queues=["api"], batch_size=2)
    assert len(started) == 2
    held = jobs.create_job(type="t", queue="api")
    answer = client.get(f"/api/jobs/{held.id}").json
    assert answer["waiting"] == "rate_limit"
    opens_at = datetime.fromisoformat(answer["waiting_until"])
    claimed_at = max(
        datetime.fromisoformat(job["claimed_at"])
        for job in client.get("/api/jobs?queue=api").json["jobs"]
        if job["claimed_at"]
    )
    assert abs((opens_at - claimed_at - timedelta(hours=1)).total_seconds()) < 1
    listed = {job["id"]: job for job in client.get("/api/jobs?queue=api").json["jobs"]}
    assert listed[held.id]["waiting_until"] == answer["waiting_until"]
    page = client.get(f"/jobs/{held.id}").get_data(as_text=True)
    assert "the window is full, until" in page

    queues.set_limits("api", {"rate_limit": {"limit": 3, "period_s": 3600}}, actor="test")
    assert client.get(f"/api/jobs/{held.id}").json["waiting_until"] is None  # room now: nothing holds it


def test_every_job_of_a_type_no_live_worker_takes_waits_for_one(client):
    """Also past the first twenty such types by name: the reason came from /health's list of
    unserved types, which names at most twenty."""
    serve_type_t(client)
    names = [f"type.{number:02}" for number in range(25)]
    made = jobs.create_jobs([{"type": name} for name in names])
    served = jobs.create_job(type="t")
    assert {job.type: waiting_of(client, job.id) for job in made} == dict.fromkeys(names, "no_worker")
    assert waiting_of(client, served.id) is None
