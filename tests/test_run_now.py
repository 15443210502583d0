"""Run now: a queued job waiting for its run_after (a delay, a retry's backoff) becomes due
at once, as Sidekiq's "Add to queue" and "Retry now" do; through the API, the dashboard, a
bulk action and the command line, as one compare-and-set with its event, and never around
the claim's other rules (an earlier attempt's lease, a paused queue)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import requests

from webapp import jobs
from webapp.domain.roles import Role
from webapp.domain.timeutil import utcnow
from webapp.jobs import recovery
from webapp.jobs.reaping import orphan_job_of_dead_worker

from tests.factories import make_job
from tests.support.worker_process import running_worker, wait_for
from tests.test_identity import bearer, token_of
from tests.test_leases import internal, running_job


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def delayed(client, **fields) -> dict:
    answer = client.post("/api/jobs", json={"type": "demo", "delay_s": 3600, **fields})
    assert answer.status_code == 201, answer.json
    return answer.json


def test_a_delayed_job_run_now_is_due_at_once_and_its_timeline_says_who(client):
    job = delayed(client)
    assert internal(client, "/jobs/claim", worker_id="w1").json["jobs"] == []

    ran = client.post(f"/api/jobs/{job['id']}/run-now", json={"reason": "the fix is out"})
    assert ran.status_code == 200, ran.json
    assert ran.json["status"] == "queued" and ran.json["attempt"] == 0
    assert at(ran.json["run_after"]) <= utcnow() < at(job["run_after"])
    last = client.get(f"/api/jobs/{job['id']}/events").json["events"][-1]
    assert (last["action"], last["from_status"], last["to_status"]) == ("run_now", "queued", "queued")
    assert last["reason"] == "the fix is out" and last["actor"] == "api"

    (claimed,) = internal(client, "/jobs/claim", worker_id="w1").json["jobs"]
    assert claimed["id"] == job["id"]


def test_a_second_click_or_a_job_that_is_not_waiting_is_a_409_that_changes_nothing(client):
    job = delayed(client)
    assert client.post(f"/api/jobs/{job['id']}/run-now", json={}).status_code == 200
    before = client.get(f"/api/jobs/{job['id']}").json
    again = client.post(f"/api/jobs/{job['id']}/run-now", json={})
    assert again.status_code == 409 and again.json["status"] == "queued", again.json
    assert client.get(f"/api/jobs/{job['id']}").json["run_after"] == before["run_after"]
    assert len(client.get(f"/api/jobs/{job['id']}/events").json["events"]) == 2  # created, run now

    held = client.post("/api/jobs", json={"type": "demo", "hold": True}).json
    assert client.post(f"/api/jobs/{held['id']}/run-now", json={}).json["status"] == "pending"
    running = running_job(client)
    refused = client.post(f"/api/jobs/{running['id']}/run-now", json={})
    assert refused.status_code == 409 and refused.json["status"] == "running"
    assert client.post("/api/jobs/424242/run-now", json={}).status_code == 404


def test_a_click_whose_clock_was_read_before_the_first_ones_changes_nothing(client, monkeypatch):
    """Two clicks at once: the one that read its clock first may reach the row second. The job's
    new run_after is then still ahead of that clock, and only its being changed since tells."""
    job = delayed(client)
    first = client.post(f"/api/jobs/{job['id']}/run-now", json={}).json
    earlier = at(first["run_after"]) - timedelta(milliseconds=5)
    monkeypatch.setattr(recovery, "utcnow", lambda: earlier)
    late = client.post(f"/api/jobs/{job['id']}/run-now", json={})
    assert late.status_code == 409 and late.json["status"] == "queued", late.json
    assert client.get(f"/api/jobs/{job['id']}").json["run_after"] == first["run_after"]


def test_a_retry_waiting_for_its_backoff_runs_now_but_not_beside_its_earlier_attempt(client):
    """The job of a worker that died is retried after a backoff while its lease keeps it from
    a second live copy: Run now ends the backoff, not the lease."""
    client.post("/api/jobs", json={"type": "demo", "max_attempts": 3})
    job = running_job(client)
    orphan_job_of_dead_worker(job["id"], "w1")
    waiting = client.get(f"/api/jobs/{job['id']}").json
    assert waiting["status"] == "queued" and at(waiting["run_after"]) > utcnow() and waiting["stopping"]

    assert client.post(f"/api/jobs/{job['id']}/run-now", json={}).status_code == 200
    assert internal(client, "/jobs/claim", worker_id="w2").json["jobs"] == []  # the lease still holds it
    internal(client, f"/jobs/{job['id']}/stopped", lease_token=job["lease_token"], attempt=1)
    (again,) = internal(client, "/jobs/claim", worker_id="w2").json["jobs"]
    assert (again["id"], again["attempt"]) == (job["id"], 2)


def test_a_paused_queue_still_holds_a_job_run_now(client):
    job = delayed(client, queue="media")
    assert client.post("/api/queues/media/pause", json={}).status_code == 200
    assert client.post(f"/api/jobs/{job['id']}/run-now", json={}).status_code == 200
    assert internal(client, "/jobs/claim", worker_id="w1").json["jobs"] == []
    assert client.post("/api/queues/media/resume", json={}).status_code == 200
    assert [j["id"] for j in internal(client, "/jobs/claim", worker_id="w1").json["jobs"]] == [job["id"]]


def test_the_bulk_action_runs_the_waiting_jobs_and_skips_the_others(client):
    waiting = [delayed(client)["id"] for _ in range(3)]
    due = client.post("/api/jobs", json={"type": "demo"}).json["id"]
    answer = client.post("/api/jobs/actions", json={"action": "run-now", "ids": [*waiting, due]})
    assert answer.status_code == 200
    assert answer.json["changed"] == 3
    assert answer.json["skipped"] == [{"id": due, "status": "queued", "reason": "already queued — nothing was done"}]


def test_the_job_page_offers_run_now_only_while_the_job_waits_for_its_time(app, client):
    app.config["WTF_CSRF_ENABLED"] = False
    job = delayed(client)
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "Run now" in page and "Due now instead of at its time" in page
    done = client.post(f"/jobs/{job['id']}/run-now", headers={"HX-Request": "true"})
    assert done.status_code == 200
    region = done.get_data(as_text=True)
    assert "Run now: done." in region
    assert f'action="/jobs/{job["id"]}/run-now"' not in region  # due now: nothing to bring forward
    assert 'data-testid="next-retry"' not in region

    due = client.post("/api/jobs", json={"type": "demo"}).json
    assert f'action="/jobs/{due["id"]}/run-now"' not in client.get(f"/jobs/{due['id']}").get_data(as_text=True)


def test_two_operators_clicking_at_once_run_it_once(server):
    api = f"{server.url}/api/jobs"
    job = requests.post(api, json={"type": "demo", "delay_s": 3600}, timeout=10).json()
    go = threading.Barrier(8)
    codes: list[int] = []

    def click() -> None:
        go.wait()
        codes.append(requests.post(f"{api}/{job['id']}/run-now", json={}, timeout=10).status_code)

    clicks = [threading.Thread(target=click) for _ in range(8)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join()
    assert sorted(codes) == [200] + [409] * 7
    events = requests.get(f"{api}/{job['id']}/events", timeout=10).json()["events"]
    assert [e["action"] for e in events].count("run_now") == 1


def test_a_waiting_worker_runs_a_job_as_soon_as_it_is_run_now(server, tmp_path):
    api = f"{server.url}/api/jobs"
    log = tmp_path / "worker.log"
    with running_worker(server.url, log, "w-now"):
        first = requests.post(api, json={"type": "demo.noop"}, timeout=10).json()
        done = lambda job_id: requests.get(f"{api}/{job_id}", timeout=10).json()["status"] == "completed"  # noqa: E731
        wait_for(lambda: done(first["id"]), what="the first job ran", logs=(log,))
        later = requests.post(api, json={"type": "demo.noop", "delay_s": 3600}, timeout=10).json()
        asked = utcnow()
        assert requests.post(f"{api}/{later['id']}/run-now", json={}, timeout=10).status_code == 200
        wait_for(lambda: done(later["id"]), what="the job run now ran", logs=(log,))
    ran = requests.get(f"{api}/{later['id']}", timeout=10).json()
    assert at(ran["started_at"]) - asked < timedelta(seconds=3), ran


def test_an_operators_run_now_is_on_the_timeline_and_in_the_audit_trail_and_a_viewer_is_refused(app):
    operator, viewer, admin = token_of("mia", Role.OPERATOR), token_of("ned", Role.VIEWER), token_of("ola", Role.ADMIN)
    client = app.test_client()
    job = make_job("queued", delay_s=3600)
    assert client.post(f"/api/jobs/{job.id}/run-now", json={}, headers=bearer(viewer)).status_code == 403
    ran = client.post(f"/api/jobs/{job.id}/run-now", json={"reason": "fix deployed"}, headers=bearer(operator))
    assert ran.status_code == 200
    assert jobs.events_of(job.id)[-1].actor == "mia"
    trail = client.get("/api/audit", headers=bearer(admin)).json["entries"]
    asked = [(e["actor"], e["outcome"], e["reason"]) for e in trail if e["action"] == "POST /api/jobs/<job_id>/run-now"]
    assert sorted(asked) == [("mia", "ok", "fix deployed"), ("ned", "403 forbidden", None)]
