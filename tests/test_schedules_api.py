"""`/api/schedules` through the Flask client on each database: answers, and bad input that changes nothing."""

from __future__ import annotations

import base64

import pytest

from webapp.store.extensions import db
from webapp.store.models import Schedule, ScheduleEvent

from tests.conftest import test_config

NIGHTLY = {"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "type": "report"}


def counts() -> tuple[int, int]:
    db.session.rollback()
    return db.session.query(Schedule).count(), db.session.query(ScheduleEvent).count()


def test_create_answers_201_with_the_next_fire_time_and_lists_it(client):
    created = client.post("/api/schedules", json={**NIGHTLY, "payload": {"day": "today"}, "overlap": "skip"})
    assert created.status_code == 201, created.json
    body = created.json
    assert (body["name"], body["source"], body["paused"], body["misfire"], body["overlap"]) == (
        "nightly",
        "api",
        False,
        "run_once",
        "skip",
    )
    assert body["description"] == "every day at 02:30 Europe/Berlin"
    assert body["next_fire_at"].endswith(("00:30:00Z", "01:30:00Z")) and body["last_job"] is None
    listed = client.get("/api/schedules").json["schedules"]
    assert [s["name"] for s in listed] == ["nightly"]
    assert client.get("/api/schedules/nightly").json == listed[0]


def test_a_name_taken_is_409(client):
    assert client.post("/api/schedules", json=NIGHTLY).status_code == 201
    assert client.post("/api/schedules", json={**NIGHTLY, "cron": "0 1 * * *"}).status_code == 409


@pytest.mark.parametrize(
    "change, field",
    [
        ({"cron": "99 2 * * *"}, "cron"),
        ({"cron": "every night"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),  # 30 February: never fires (was a 500)
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"cron": None, "every_s": 0}, "every_s"),
        ({"every_s": 60}, "cron"),  # both
        ({"cron": None}, "cron"),  # neither
        ({"misfire": "sometimes"}, "misfire"),
        ({"overlap": "maybe"}, "overlap"),
        ({"name": "has space"}, "name"),
        ({"type": ""}, "type"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_changes_nothing(client, change, field):
    body = {**NIGHTLY, **change}
    body = {key: value for key, value in body.items() if value is not None}
    response = client.post("/api/schedules", json=body)
    assert response.status_code == 400, response.json
    assert response.json["field"] == field
    assert counts() == (0, 0)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"cron": "1 2 3"}, "cron"),
        ({"cron": "0 0 31 4 *"}, "cron"),
        ({"timezone": "Nowhere/Else"}, "timezone"),
        ({"every_s": 0}, "every_s"),
    ],
)
def test_a_bad_change_is_400_and_changes_nothing(client, change, field):
    client.post("/api/schedules", json=NIGHTLY)
    before = client.get("/api/schedules/nightly").json
    response = client.patch("/api/schedules/nightly", json=change)
    assert (response.status_code, response.json["field"]) == (400, field)
    assert client.get("/api/schedules/nightly").json == before


def test_change_pause_resume_trigger_remove(client):
    client.post("/api/schedules", json=NIGHTLY)
    changed = client.patch("/api/schedules/nightly", json={"every_s": 3600}).json
    assert (changed["cron"], changed["every_s"], changed["description"]) == (None, 3600, "every hour")
    assert client.post("/api/schedules/nightly/pause", json={}).json["paused"] is True
    assert client.post("/api/schedules/nightly/resume", json={}).json["paused"] is False
    triggered = client.post("/api/schedules/nightly/trigger", json={})
    assert triggered.status_code == 201
    job = triggered.json
    assert job["schedule"] == "nightly" and job["scheduled_for"] and job["type"] == "report"
    assert client.get("/api/schedules/nightly").json["last_job"]["id"] == job["id"]
    client.post("/api/jobs", json={"type": "report"})
    assert [j["id"] for j in client.get("/api/jobs?schedule=nightly").json["jobs"]] == [job["id"]]
    assert client.delete("/api/schedules/nightly").status_code == 204
    assert client.get("/api/schedules/nightly").status_code == 404
    assert client.post("/api/schedules/nightly/trigger", json={}).status_code == 404
    assert client.get(f"/api/jobs/{job['id']}").json["schedule"] == "nightly"  # its jobs stay


def test_writes_need_the_operator(database_url):
    from webapp import create_app

    guarded = create_app(test_config(database_url, JOBWARDEN_ADMIN_PASSWORD="pw"))
    with guarded.app_context():
        db.create_all()
        client = guarded.test_client()
        assert client.post("/api/schedules", json=NIGHTLY).status_code == 401
        assert client.get("/api/schedules").status_code == 200
        auth = {"Authorization": "Basic " + base64.b64encode(b"admin:pw").decode()}
        guarded_one = {**NIGHTLY, "name": f"guarded-{id(client)}"}
        assert client.post("/api/schedules", json=guarded_one, headers=auth).status_code == 201
        db.session.remove()
        db.engine.dispose()
