"""A job created to run later (`delay_s` or `run_after`, as Sidekiq's perform_in and Oban's
scheduled_at): queued at once, claimed only from its time, and run then by a waiting worker."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

from webapp.domain.timeutil import utcnow
from webapp.store import transitions
from webapp.store.extensions import db
from webapp.store.models import Job
from webapp.store.transaction import unit_of_work

from tests.support.worker_process import running_worker, wait_for
from tests.test_input_limits import refused


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_delayed_job_waits_for_its_time_then_is_claimed(client):
    answer = client.post("/api/jobs", json={"type": "t", "delay_s": 60})
    assert answer.status_code == 201, answer.json
    job = answer.json
    assert job["status"] == "queued"
    assert at(job["run_after"]) - at(job["created_at"]) == timedelta(seconds=60)
    detail = client.get(f"/api/jobs/{job['id']}").json
    assert detail["waiting"] == "run_after" and detail["waiting_until"] == job["run_after"]
    with unit_of_work():
        assert transitions.claim("w") == []
    with unit_of_work():
        early = transitions.claim("w", now=at(job["run_after"]) - timedelta(seconds=1))
        due = transitions.claim("w", now=at(job["run_after"]))
    assert early == [] and [claimed.id for claimed in due] == [job["id"]]


def test_run_after_keeps_the_instant_given_in_any_zone_and_a_past_one_runs_now(client):
    ahead = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    in_berlin = ahead.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+01:00").tzinfo).isoformat()
    later = client.post("/api/jobs", json={"type": "t", "run_after": in_berlin}).json
    assert at(later["run_after"]) == ahead
    past = client.post("/api/jobs", json={"type": "t", "run_after": "2020-01-01T00:00:00Z"}).json
    assert past["run_after"] == past["created_at"]  # not "waiting since 2020"
    # The first instant a zone can name, before any UTC one: converting it was a 500.
    first = client.post("/api/jobs", json={"type": "t", "run_after": "0001-01-01T00:00:00+14:00"})
    assert first.status_code == 201 and first.json["run_after"] == first.json["created_at"]
    with unit_of_work():
        assert [claimed.id for claimed in transitions.claim("w", batch_size=5)] == [past["id"], first.json["id"]]


def test_a_bulk_create_delays_only_the_entries_that_ask(client):
    ids = client.post("/api/jobs/bulk", json={"jobs": [{"type": "t"}, {"type": "t", "delay_s": 30}]}).json["ids"]
    now_job, later_job = (client.get(f"/api/jobs/{job_id}").json for job_id in ids)
    assert now_job["run_after"] == now_job["created_at"]
    assert at(later_job["run_after"]) - at(later_job["created_at"]) == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"delay_s": -1}, "delay_s"),
        ({"delay_s": 367 * 24 * 3600}, "delay_s"),
        ({"delay_s": "soon"}, "delay_s"),
        ({"run_after": "2026-12-31T10:00:00"}, "run_after"),  # no zone: whose ten o'clock?
        ({"run_after": "next week"}, "run_after"),
        ({"run_after": "2099-01-01T00:00:00Z"}, "run_after"),
        ({"delay_s": 5, "run_after": "2026-12-31T10:00:00Z"}, "run_after"),
        ({"hold": True, "delay_s": 5}, "delay_s"),
        ({"hold": True, "run_after": "2026-12-31T10:00:00Z"}, "run_after"),
    ],
)
def test_a_first_run_that_cannot_be_meant_is_refused_naming_the_field(client, body, field):
    refused(client.post("/api/jobs", json={"type": "t", **body}), field)
    refused(client.post("/api/jobs/bulk", json={"jobs": [{"type": "t"}, {"type": "t", **body}]}), f"jobs[1].{field}")
    assert db.session.query(Job).count() == 0


def test_a_waiting_worker_runs_a_delayed_job_when_its_time_comes(server, tmp_path):
    """The worker's claim waits on the server; a delayed job created meanwhile wakes it at the
    job's time, not at the end of its long poll."""
    api = f"{server.url}/api/jobs"
    with running_worker(server.url, tmp_path / "worker.log", "w-delay"):
        first = requests.post(api, json={"type": "demo.noop"}, timeout=10).json()
        done = lambda job_id: requests.get(f"{api}/{job_id}", timeout=10).json()["status"] == "completed"  # noqa: E731
        wait_for(lambda: done(first["id"]), what="the first job ran", logs=(tmp_path / "worker.log",))
        delayed = requests.post(api, json={"type": "demo.noop", "delay_s": 2}, timeout=10).json()
        wait_for(lambda: done(delayed["id"]), what="the delayed job ran", logs=(tmp_path / "worker.log",))
    ran = requests.get(f"{api}/{delayed['id']}", timeout=10).json()
    started_late_by = at(ran["started_at"]) - at(ran["run_after"])
    assert timedelta(0) <= started_late_by < timedelta(seconds=3), ran
