"""The /schedules page and the schedule on job pages, through the Flask client on each database."""

from __future__ import annotations

import re

from webapp.jobs import schedules as store
from webapp.store.extensions import db
from webapp.store.models import Schedule


def csrf(client, path="/schedules") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def add(client, **fields):
    form = {"csrf_token": csrf(client), "name": "nightly", "type": "report", "cron": "30 2 * * *",
            "timezone": "Europe/Berlin", **fields}  # fmt: skip
    return client.post("/schedules", data=form)


def test_the_page_shows_the_schedule_in_words_with_its_next_times_local_and_utc(client):
    assert add(client).status_code in (200, 302)
    page = client.get("/schedules").get_data(as_text=True)
    assert "every day at 02:30 Europe/Berlin" in page
    assert page.count("02:30 CE") == 3  # three next times in Berlin (CET or CEST)…
    assert "(00:30 UTC)" in page or "(01:30 UTC)" in page  # …and in UTC
    assert "no runs yet" in page


def test_bad_form_input_is_400_naming_the_field_and_adds_nothing(client):
    answer = add(client, cron="30 25 * * *")
    assert answer.status_code == 400 and "cron:" in answer.get_data(as_text=True)
    answer = add(client, timezone="Europe/Atlantis")
    assert answer.status_code == 400 and "timezone:" in answer.get_data(as_text=True)
    db.session.rollback()
    assert db.session.query(Schedule).count() == 0


def test_pause_trigger_and_the_run_on_the_page_and_the_job_page(client):
    add(client)
    token = csrf(client)
    client.post("/schedules/nightly/pause", data={"csrf_token": token})
    db.session.rollback()
    assert store.get("nightly").paused is True
    client.post("/schedules/nightly/trigger", data={"csrf_token": token})
    db.session.rollback()
    run = store.last_runs(["nightly"], 1)["nightly"][0]
    page = client.get("/schedules").get_data(as_text=True)
    assert f"/jobs/{run.id}" in page and "paused" in page
    job_page = client.get(f"/jobs/{run.id}").get_data(as_text=True)
    assert "created by schedule" in job_page and ">nightly</a>" in job_page
    listed = client.get("/jobs?schedule=nightly").get_data(as_text=True)
    assert f"/jobs/{run.id}" in listed
    assert f'/jobs/{run.id}"' not in client.get("/jobs?schedule=other").get_data(as_text=True)


def test_editing_changes_a_stored_schedule(client):
    add(client)
    client.post("/schedules/nightly/edit", data={"csrf_token": csrf(client), "every_s": "3600", "type": "report",
                                                  "timezone": "UTC"})  # fmt: skip
    db.session.rollback()
    schedule = store.get("nightly")
    assert (schedule.cron, schedule.every_s) == (None, 3600)
