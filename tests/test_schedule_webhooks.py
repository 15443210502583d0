"""`job.*` webhook notifications of a job a schedule made carry its `schedule` and `scheduled_for`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from webapp import jobs
from webapp.jobs import schedules as store
from webapp.store.extensions import db
from webapp.store.models import WebhookNotification
from webapp.webhooks import events

from tests.conftest import test_config
from tests.test_schedule_store import T0, make


@pytest.fixture
def app_config(database_url):
    return test_config(database_url, JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=True)


def test_job_events_sent_to_webhooks_carry_the_schedule(app, client):
    hook = {"url": "http://127.0.0.1:9/hook", "events": [events.JOB_COMPLETED]}  # never sent: no delivery runs
    assert client.post("/api/webhooks", json=hook).status_code == 201
    make()
    store.fire_round(T0 + timedelta(seconds=60))
    db.session.rollback()
    claimed = jobs.claim_jobs("w1")[0]
    jobs.start_job(claimed.id, claimed.lease_token)
    jobs.complete_job(claimed.id, claimed.lease_token, result=None, exit_code=0, output="")
    db.session.rollback()
    (notification,) = db.session.scalars(select(WebhookNotification)).all()
    sent = notification.payload["job"]
    assert (sent["schedule"], sent["scheduled_for"]) == ("nightly", "2026-03-01T12:01:00Z")
