"""The flow-control API: queue on a job, duplicates of unique jobs, /api/queues reads,
limits, pause and resume, and bad input refused with the field named and nothing changed."""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, update

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import queues
from webapp.store.extensions import db
from webapp.store.models import Job, QueueEvent
from webapp.store.transaction import unit_of_work


def test_a_job_is_created_in_a_queue_and_listed_by_it(client):
    made = client.post("/api/jobs", json={"type": "t", "queue": "mail", "concurrency_key": "k"})
    assert made.status_code == 201
    assert (made.json["queue"], made.json["concurrency_key"]) == ("mail", "k")
    assert client.post("/api/jobs", json={"type": "t"}).json["queue"] == "default"
    listed = client.get("/api/jobs?queue=mail").json["jobs"]
    assert [job["id"] for job in listed] == [made.json["id"]]
    assert client.get("/jobs?queue=mail").status_code == 200


def test_a_create_with_a_live_unique_key_answers_200_with_that_job(client):
    first = client.post("/api/jobs", json={"type": "import", "unique_key": "nightly"})
    again = client.post("/api/jobs", json={"type": "import", "unique_key": "nightly"})
    assert first.status_code == 201 and "duplicate" not in first.json
    assert again.status_code == 200
    assert (again.json["id"], again.json["duplicate"]) == (first.json["id"], True)


def test_unique_for_s_needs_a_unique_key(client):
    refused = client.post("/api/jobs", json={"type": "import", "unique_for_s": 60})
    assert refused.status_code == 400 and "unique_for_s" in refused.json["message"]


def test_queues_list_their_limits_depth_and_load(client):
    jobs.create_jobs([{"type": "t", "queue": "gpu"}] * 3)
    set_limits = client.patch("/api/queues/gpu", json={"concurrency": 2, "rate_limit": {"limit": 10, "period_s": 1}})
    assert set_limits.status_code == 200
    (gpu,) = client.get("/api/queues").json["queues"]
    assert gpu == {
        "name": "gpu",
        "paused": False,
        "concurrency": 2,
        "key_concurrency": None,
        "rate_limit": {"limit": 10, "period_s": 1.0},
        "queued": 3,
        "queued_cap": 10_000,
        "running": 0,
        "oldest_queued_s": gpu["oldest_queued_s"],
        "finished_last_hour": 0,
    }
    assert gpu["oldest_queued_s"] >= 0
    cleared = client.patch("/api/queues/gpu", json={"rate_limit": None}).json
    assert (cleared["concurrency"], cleared["rate_limit"]) == (2, None)


@pytest.mark.parametrize(("period_s", "shown"), [(60, "60"), (0.5, "0.5"), (86400, "86400")])
def test_the_queues_page_shows_a_rate_period_as_it_was_typed(client, period_s, shown):
    queues.set_limits("gpu", {"rate_limit": {"limit": 10, "period_s": period_s}}, actor="ops")
    page = client.get("/queues").get_data(as_text=True)
    assert f'name="rate_limit.period_s" value="{shown}"' in page  # stored as a float: 60 read "60.0"


def test_a_queue_counts_its_backlog_up_to_the_cap(client, monkeypatch):
    monkeypatch.setattr(queues.QueueView, "queued_cap", 3)
    jobs.create_jobs([{"type": "t", "queue": "deep"}] * 5 + [{"type": "t", "queue": "shallow"}] * 3)
    listed = {queue["name"]: queue for queue in client.get("/api/queues").json["queues"]}
    assert {name: (queue["queued"], queue["queued_cap"]) for name, queue in listed.items()} == {
        "deep": (4, 3),  # more than the cap: cap + 1
        "shallow": (3, 3),
    }
    page = client.get("/queues").get_data(as_text=True)
    shown = dict(re.findall(r'<tr data-queue="(\w+)">.*?<td class="num">([^<]*)</td>', page, re.DOTALL))
    assert shown == {"deep": "3+", "shallow": "3"}


def test_the_oldest_wait_counts_from_when_a_job_became_ready(client):
    """As the monitor's queue_latency measures it: a job due later is not waiting yet."""
    now = utcnow()
    later, ready, also_later = jobs.create_jobs([{"type": "t", "queue": name} for name in ("later", "mixed", "mixed")])
    due = {
        later.id: now + timedelta(hours=1),
        ready.id: now - timedelta(seconds=90),
        also_later.id: now + timedelta(hours=1),
    }
    with unit_of_work():  # as a retry's backoff sets it
        for job_id, run_after in due.items():
            db.session.execute(update(Job).where(Job.id == job_id).values(run_after=run_after))
    listed = {queue["name"]: queue for queue in client.get("/api/queues").json["queues"]}
    assert listed["later"]["queued"] == 1 and listed["later"]["oldest_queued_s"] is None
    assert listed["mixed"]["queued"] == 2 and 90 <= listed["mixed"]["oldest_queued_s"] < 150


def test_pause_and_resume_are_recorded_with_actor_and_reason(client):
    jobs.create_job(type="t", queue="mail")
    paused = client.post("/api/queues/mail/pause", json={"reason": "incident 42"})
    assert paused.status_code == 200 and paused.json["paused"] is True
    assert client.post("/api/queues/mail/resume", json={}).json["paused"] is False
    events = db.session.scalars(select(QueueEvent).order_by(QueueEvent.id)).all()
    assert [(e.queue, e.action, e.actor, e.reason) for e in events] == [
        ("mail", "pause", "api", "incident 42"),
        ("mail", "resume", "api", None),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"concurrency": -1}, "concurrency"),
        ({"key_concurrency": 0}, "key_concurrency"),
        ({"rate_limit": {"limit": -5, "period_s": 1}}, "rate_limit.limit"),
        ({"rate_limit": {"limit": 5, "period_s": 1e12}}, "rate_limit.period_s"),
        ({"rate_limit": {"limit": 5, "period_s": 0}}, "rate_limit.period_s"),
        ({"concurrency": "many"}, "concurrency"),
        ({"paused": True}, "paused"),
        ({}, None),
    ],
)
def test_bad_limits_are_a_400_naming_the_field_and_change_nothing(client, body, field):
    client.patch("/api/queues/q", json={"concurrency": 3})
    refused = client.patch("/api/queues/q", json=body)
    assert refused.status_code == 400
    if field:
        assert field in refused.json["message"]
    (queue,) = client.get("/api/queues").json["queues"]
    assert (queue["concurrency"], queue["key_concurrency"], queue["rate_limit"]) == (3, None, None)


def test_pausing_an_unknown_queue_is_a_400_and_creates_nothing(client):
    refused = client.post("/api/queues/nobody/pause", json={})
    assert refused.status_code == 400 and "name" in refused.json["message"]
    assert client.get("/api/queues").json["queues"] == []


def test_queue_writes_need_the_operator_password(app, client):
    app.config["JOBWARDEN_ADMIN_PASSWORD"] = "s3cret"
    jobs.create_job(type="t", queue="mail")
    assert client.post("/api/queues/mail/pause", json={}).status_code == 401
    assert client.patch("/api/queues/mail", json={"concurrency": 1}).status_code == 401
    assert client.get("/api/queues").status_code == 200
    auth = {"Authorization": "Basic " + base64.b64encode(b"operator:s3cret").decode()}
    assert client.post("/api/queues/mail/pause", json={}, headers=auth).status_code == 200
    assert queues.get_queue("mail").paused


def test_sixteen_concurrent_creates_of_one_unique_key_make_one_job(server):
    address = urlsplit(server.url)
    start = threading.Barrier(16)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def create() -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        body = json.dumps({"type": "import", "unique_key": "nightly-2026-12-06"})
        start.wait()
        connection.request("POST", "/api/jobs", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        with lock:
            answers.append((response.status, json.loads(response.read())))
        connection.close()

    threads = [threading.Thread(target=create) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(status for status, _ in answers).count(201) == 1
    assert sorted(status for status, _ in answers).count(200) == 15
    assert len({answer["id"] for _, answer in answers}) == 1
    assert all(answer["duplicate"] for status, answer in answers if status == 200)
    db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(Job)).scalar_one() == 1
