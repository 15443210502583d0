"""Webhooks end to end: the outbox written with the change, delivery to a real receiver on
loopback that verifies every signature with the standardwebhooks library, retries, order per
job, redelivery, the address guard, the Slack format, the API and the dashboard page."""

from __future__ import annotations

import html as markup
import json
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import WebhookVerificationError

from benchmarks._support import statements_run
from webapp import jobs, monitor
from webapp.domain.timeutil import utcnow
from webapp.jobs.serialize import job_json
from webapp.server import presence
from webapp.server.dashboard.webhooks import CONFIRMATIONS
from webapp.store import flow, transitions
from webapp.store.extensions import db
from webapp.store.models import WebhookDelivery, WebhookEndpoint, WebhookNotification
from webapp.webhooks import delivery, events

from tests.conftest import postgresql_only, test_config
from tests.support.receiver import Receiver

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

ALL_EVENTS = list(events.EVENT_TYPES)


@pytest.fixture
def app_config(database_url):
    return test_config(
        database_url, JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=True, JOBWARDEN_PUBLIC_URL="https://jobs.example.com"
    )


@pytest.fixture
def receiver():
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


def add_endpoint(client, url: str, events_: list[str] = ALL_EVENTS, format: str = "standard") -> dict:
    response = client.post("/api/webhooks", json={"url": url, "events": events_, "format": format})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def run_job(*, fail_with: str | None = None, max_attempts: int = 1, job_type: str = "demo"):
    job = jobs.create_job(type=job_type, max_attempts=max_attempts)
    claimed = jobs.claim_jobs("w1")[0]
    jobs.start_job(job.id, claimed.lease_token)
    if fail_with is None:
        return jobs.complete_job(job.id, claimed.lease_token, result={"ok": True}, exit_code=0, output="")
    return jobs.fail_job(job.id, claimed.lease_token, error=fail_with, exit_code=1, retryable=False)


def deliver_until(condition, *, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "deliveries did not arrive in time"
        delivery.deliver_until_idle()
        time.sleep(0.2)


def notifications() -> list[WebhookNotification]:
    db.session.expire_all()
    return list(db.session.scalars(select(WebhookNotification).order_by(WebhookNotification.id)))


# --- the outbox ------------------------------------------------------------------------------


def test_without_a_subscribed_endpoint_nothing_is_written(app, client):
    run_job()
    assert notifications() == []
    add_endpoint(client, "http://127.0.0.1:9/hook", [events.JOB_FAILED])
    run_job()  # completed: nobody listens to job.completed
    assert notifications() == []
    run_job(fail_with="boom")
    assert [n.type for n in notifications()] == [events.JOB_FAILED]


@postgresql_only  # SQLite has no DML in CTEs: there the outbox runs its own statements after the transition
def test_a_notifying_transition_is_one_statement_on_postgresql(app, client, monkeypatch):
    add_endpoint(client, "http://127.0.0.1:9/hook", [events.JOB_COMPLETED])
    job_id = jobs.create_job(type="demo").id  # read now: inside the block it would be a reload after the commits
    lease = jobs.claim_jobs("w1")[0].lease_token
    jobs.start_job(job_id, lease)
    # The wake-up's "any queue limited?" hint is read at most once a second per process, after
    # the commit: whether it falls in the block depended on the tests run before. Read it now.
    monkeypatch.setattr(flow, "LIMITS_IN_USE_TTL_S", 3600.0)
    flow.limits_in_use()
    with statements_run(db.engine) as statements:
        transitions.transition(
            job_id, "complete", actor="worker:w1", lease_token=lease, attempt_values={"outcome": "completed"}
        )
        db.session.commit()
    assert len(statements) == 1, statements  # the job, its attempt, its event, the notification, the delivery
    assert [n.type for n in notifications()] == [events.JOB_COMPLETED]
    assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


@postgresql_only  # SQLite writes job_json itself
def test_the_notification_built_in_sql_is_the_job_json_the_api_shows(app, client):
    """PostgreSQL builds the payload in SQL (`job_json_sql`): the same JSON as `job_json`, down to 100.0
    and times with no fraction."""
    add_endpoint(client, "http://127.0.0.1:9/hook", [events.JOB_COMPLETED, events.JOB_CANCELLED])
    job = jobs.create_job(type="démo", payload={"n": [1, 2.5, None], "s": "é\n"}, max_attempts=1)
    lease = jobs.claim_jobs("w1")[0].lease_token
    jobs.start_job(job.id, lease)
    completed = jobs.complete_job(job.id, lease, result={"ok": True, "x": 1.0}, exit_code=0, output="")
    other = jobs.create_job(type="demo")
    lease = jobs.claim_jobs("w1")[0].lease_token
    jobs.heartbeat(other.id, lease, progress=33.3, stage="half")
    cancelled = transitions.transition(other.id, "cancel", actor="operator", now=utcnow().replace(microsecond=0))
    db.session.commit()
    assert completed.progress == 100 and cancelled.updated_at.microsecond == 0
    stored = [json.dumps(n.payload, sort_keys=True) for n in notifications()]
    assert stored == [json.dumps({"job": job_json(j)}, sort_keys=True) for j in (completed, cancelled)]


@postgresql_only  # SQLite applies a batch's completes one by one
def test_jobs_completed_in_one_statement_get_a_notification_each_with_its_own_id(app, client):
    add_endpoint(client, "http://127.0.0.1:9/hook", [events.JOB_COMPLETED])
    for number in range(3):
        jobs.create_job(type="demo", payload={"n": number})
    claimed = jobs.claim_jobs("w1", batch_size=3)
    jobs.start_jobs([jobs.StartReport(job.id, job.lease_token) for job in claimed])
    outcomes = jobs.complete_jobs([jobs.CompleteReport(job.id, job.lease_token, {"n": job.id}) for job in claimed])
    written = notifications()
    assert sorted(n.job_id for n in written) == sorted(job.id for job in claimed)
    assert len({n.event_id for n in written}) == 3 and all(n.event_id.startswith("msg_") for n in written)
    by_job = {n.job_id: json.dumps(n.payload, sort_keys=True) for n in written}
    assert by_job == {job.id: json.dumps({"job": job_json(job)}, sort_keys=True) for job in outcomes}
    assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 3


def test_a_completed_job_s_notification_is_the_job_json_a_later_read_shows(app, client):
    """On each database the payload says what GET /api/jobs/<id> says afterwards (SQLite once
    sent `progress` 100 where every read says 100.0)."""
    add_endpoint(client, "http://127.0.0.1:9/hook", [events.JOB_COMPLETED])
    completed = run_job()
    db.session.expire_all()
    (written,) = notifications()
    shown = client.get(f"/api/jobs/{completed.id}").get_json()  # the job and more (its attempts, steps)
    sent = written.payload["job"]
    assert json.dumps(sent, sort_keys=True) == json.dumps({key: shown[key] for key in sent}, sort_keys=True)


def test_a_disabled_endpoint_gets_nothing_new(app, client):
    endpoint = add_endpoint(client, "http://127.0.0.1:9/hook")
    db.session.get(WebhookEndpoint, endpoint["id"]).enabled = False
    db.session.commit()
    run_job()
    assert notifications() == []


def test_every_event_type_is_delivered_signed(app, client, receiver):
    endpoint = add_endpoint(client, receiver.url)
    completed = run_job()
    failed = run_job(fail_with="boom")
    jobs.force_start(failed.id, actor="operator")  # job.recovered
    cancelled = jobs.create_job(type="demo")
    jobs.cancel_job(cancelled.id)
    lease = jobs.claim_jobs("w2")
    assert [job.id for job in lease] == [failed.id]  # the recovered one is first in the queue
    jobs.start_job(failed.id, lease[0].lease_token)
    # The monitor finds the recovered job's attempt silent: job.orphaned (not job.failed).
    monitor.run_pass(now=utcnow() + timedelta(seconds=120))
    held = jobs.create_job(type="demo", hold=True)
    jobs.create_job(type="nobody-takes-this")
    # Stale pending (an hour by default) and a queued type nobody takes: both alerts.
    monitor.run_pass(now=utcnow() + timedelta(hours=2))

    expected = {
        events.JOB_COMPLETED,
        events.JOB_FAILED,
        events.JOB_RECOVERED,
        events.JOB_CANCELLED,
        events.JOB_ORPHANED,
        events.ALERT_STALE_PENDING,
        events.ALERT_UNSERVED_TYPE,
    }
    assert {n.type for n in notifications()} == expected
    deliver_until(lambda: len(receiver.ids()) >= len(notifications()))

    bodies = receiver.bodies(endpoint["secret"])  # every signature verified by the library
    by_type = {body["type"]: body for body in bodies}
    assert set(by_type) == expected
    assert by_type[events.JOB_COMPLETED]["data"]["job"]["id"] == completed.id
    assert by_type[events.JOB_COMPLETED]["data"]["job"]["status"] == "completed"
    assert by_type[events.JOB_FAILED]["data"]["job"]["last_error"] == "boom"
    assert by_type[events.JOB_CANCELLED]["data"]["job"]["id"] == cancelled.id
    assert by_type[events.JOB_ORPHANED]["data"]["job"]["id"] in (failed.id, held.id)
    assert by_type[events.ALERT_STALE_PENDING]["data"]["alert"]["jobs"] == [held.id]
    assert "nobody-takes-this" in by_type[events.ALERT_UNSERVED_TYPE]["data"]["alert"]["types"]
    for item, body in zip(receiver.snapshot(), bodies, strict=True):
        assert set(body) == {"id", "type", "timestamp", "data"}
        assert item.webhook_id == body["id"]
    # The monitor's failures are job.orphaned only, never also job.failed.
    orphaned_ids = {b["data"]["job"]["id"] for b in bodies if b["type"] == events.JOB_ORPHANED}
    assert orphaned_ids == {failed.id, held.id}
    assert [b["data"]["job"]["id"] for b in bodies if b["type"] == events.JOB_FAILED] == [failed.id]
    with pytest.raises(WebhookVerificationError):
        receiver.snapshot()[0].verified("whsec_" + "A" * 43)


def test_the_unserved_type_alert_is_raised_once_not_every_pass(app, client, receiver):
    add_endpoint(client, receiver.url, [events.ALERT_UNSERVED_TYPE])
    jobs.create_job(type="nobody-takes-this")
    monitor.run_pass()
    monitor.run_pass()
    assert [n.type for n in notifications()] == [events.ALERT_UNSERVED_TYPE]


def test_the_unserved_type_alert_waits_out_a_deploy_that_replaces_the_workers(app, client, receiver):
    """Every deploy with a backlog raised it: the old workers stop, the new ones are a few
    seconds away. A type is unserved once no worker was heard taking it for 60 s."""
    add_endpoint(client, receiver.url, [events.ALERT_UNSERVED_TYPE])
    jobs.register_worker("old", types=["video.encode"])
    presence.say_goodbye("old")
    left = utcnow()
    jobs.create_job(type="video.encode")
    monitor.run_pass(now=left + timedelta(seconds=20))
    assert notifications() == []
    monitor.run_pass(now=left + timedelta(seconds=61))
    assert [n.type for n in notifications()] == [events.ALERT_UNSERVED_TYPE]


# --- delivery: retries, order, crashes --------------------------------------------------------


def test_a_receiver_down_then_up_gets_everything_in_order_per_job(app, client, receiver):
    endpoint = add_endpoint(client, receiver.url)
    receiver.stop()
    first = run_job(fail_with="first failure")
    jobs.force_start(first.id)
    jobs.cancel_job(first.id)
    others = [run_job().id for _ in range(3)]
    delivery.deliver_until_idle()  # connection refused: every first attempt fails
    failed_rows = list(db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.outcome == "retrying")))
    # Only each job's earliest notification was tried: the later ones wait their turn.
    assert len(failed_rows) == 1 + len(others)
    for row in db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.at.is_(None))):
        if row.attempt == 2:
            assert row.next_attempt_at - utcnow() <= timedelta(seconds=10)  # first retry within 10 s

    receiver.start()
    deliver_until(lambda: len(receiver.ids()) >= 6)
    bodies = receiver.bodies(endpoint["secret"])
    assert sorted(b["id"] for b in bodies) == sorted(n.event_id for n in notifications())
    of_first = [b["type"] for b in bodies if b["data"]["job"]["id"] == first.id]
    assert of_first == [events.JOB_FAILED, events.JOB_RECOVERED, events.JOB_CANCELLED]
    assert {b["data"]["job"]["id"] for b in bodies if b["type"] == events.JOB_COMPLETED} == set(others)


def test_an_error_answer_is_logged_and_retried(app, client, receiver):
    endpoint = add_endpoint(client, receiver.url, [events.JOB_COMPLETED])
    receiver.status = 500
    run_job()
    delivery.deliver_until_idle()
    log = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["deliveries"]
    assert [(d["attempt"], d["outcome"]) for d in log] == [(2, "pending"), (1, "retrying")]
    tried = log[1]
    assert tried["status_code"] == 500 and tried["error"] == "HTTP 500"
    assert tried["latency_ms"] is not None and len(tried["response_excerpt"].encode()) <= 1024
    assert tried["event_id"] == log[0]["event_id"]
    receiver.status = 200
    deliver_until(lambda: len(receiver.ids()) == 1)
    assert receiver.snapshot()[0].webhook_id == tried["event_id"]


def test_an_endpoint_failing_too_long_is_disabled_with_a_health_alert(app, client, receiver):
    app.config["JOBWARDEN_WEBHOOK_DISABLE_AFTER_S"] = 0
    endpoint = add_endpoint(client, receiver.url, [events.JOB_COMPLETED])
    receiver.status = 503
    run_job()
    delivery.deliver_until_idle()
    health = client.get("/api/health").get_json()
    assert health["healthy"] is False
    assert [e["id"] for e in health["webhooks"]["disabled_endpoints"]] == [endpoint["id"]]
    assert "url" not in health["webhooks"]["disabled_endpoints"][0]  # the URL may be a credential
    assert 'data-testid="webhook-disabled"' in client.get("/health").get_data(as_text=True)
    assert client.get("/api/webhooks").get_json()["webhooks"][0]["enabled"] is False
    enabled = client.post(f"/api/webhooks/{endpoint['id']}/enable", json={})
    assert enabled.status_code == 200 and enabled.get_json()["enabled"] is True


def test_giving_up_after_the_retry_window(app, client, receiver):
    app.config["JOBWARDEN_WEBHOOK_RETRY_FOR_S"] = 0
    endpoint = add_endpoint(client, receiver.url, [events.JOB_COMPLETED])
    receiver.status = 500
    run_job()
    delivery.deliver_until_idle()
    log = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["deliveries"]
    assert [d["outcome"] for d in log] == ["gave_up"]
    assert "gave up" in log[0]["error"]


def test_the_retry_schedule_grows_to_hours_within_a_day():
    delays = [delivery.retry_delay(n) for n in range(1, 40)]
    assert delays[0] <= 10 and sum(delays[:3]) <= 60
    assert max(delays) >= 3600 and sum(delays) >= 24 * 3600


def test_a_delivery_process_killed_mid_batch_loses_nothing(app, client, receiver, database_url, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import INTERNAL_KEY
    from tests.support.server import PROJECT_ROOT

    endpoint = add_endpoint(client, receiver.url, [events.JOB_COMPLETED])
    for _ in range(24):
        run_job()
    receiver.delay_s = 1.0
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JOBWARDEN_ENV": "testing",
        "JOBWARDEN_MONITOR": "off",
        "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY,
        "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE": "1",
        "JOBWARDEN_WEBHOOK_LEASE_S": "3",
        "JOBWARDEN_WEBHOOK_BATCH_SIZE": "8",
        "JOBWARDEN_WEBHOOK_INTERVAL": "0.2",
    }

    def deliverer() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "webapp", "webhooks", "deliver"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=(tmp_path / "deliver.log").open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    first = deliverer()
    try:
        deadline = time.monotonic() + 30
        while receiver.started_requests < 4:  # mid-batch: requests are in flight
            assert first.poll() is None, (tmp_path / "deliver.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "deliver.log").read_text()
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        db.session.expire_all()
        in_flight = db.session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.at.is_(None), WebhookDelivery.locked_until.is_not(None))
        )
        assert in_flight > 0  # killed with claimed deliveries unrecorded
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    receiver.delay_s = 0.0
    second = deliverer()
    try:
        expected = {n.event_id for n in notifications()}
        deadline = time.monotonic() + 60
        while not expected <= set(receiver.ids()):
            assert time.monotonic() < deadline, (tmp_path / "deliver.log").read_text()
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(second.pid, signal.SIGKILL)
    receiver.bodies(endpoint["secret"])  # every signature verified
    assert len(expected) == 24


# --- redelivery, secrets, formats -------------------------------------------------------------


def test_redeliver_keeps_the_webhook_id_and_rotation_changes_the_key(app, client, receiver):
    endpoint = add_endpoint(client, receiver.url, [events.JOB_COMPLETED])
    run_job()
    deliver_until(lambda: len(receiver.ids()) == 1)
    log = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["deliveries"]
    assert log[0]["outcome"] == "delivered" and log[0]["status_code"] == 200

    rotated = client.post(f"/api/webhooks/{endpoint['id']}/rotate-secret", json={}).get_json()["secret"]
    assert rotated.startswith("whsec_") and rotated != endpoint["secret"]
    again = client.post(f"/api/webhooks/{endpoint['id']}/deliveries/{log[0]['id']}/redeliver", json={})
    assert again.status_code == 202
    assert again.get_json()["event_id"] == log[0]["event_id"] and again.get_json()["attempt"] == 2
    deliver_until(lambda: len(receiver.ids()) == 2)
    first, second = receiver.snapshot()
    assert first.webhook_id == second.webhook_id == log[0]["event_id"]
    first.verified(endpoint["secret"])
    second.verified(rotated)
    with pytest.raises(WebhookVerificationError):
        second.verified(endpoint["secret"])


def test_slack_format_is_a_readable_incoming_webhook_message(app, client, receiver):
    endpoint = add_endpoint(client, receiver.url, [events.JOB_FAILED], format="slack")
    job = run_job(fail_with="ValueError: bad input\nTraceback line two")
    deliver_until(lambda: len(receiver.ids()) == 1)
    (body,) = receiver.bodies(endpoint["secret"])
    assert set(body) == {"text"}
    text = body["text"]
    assert f"<https://jobs.example.com/jobs/{job.id}|Job {job.id}>" in text
    assert "failed" in text and "ValueError: bad input" in text and "line two" not in text


# --- the address guard --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.5/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1: a relay delivers it to loopback
        "http://[2002:a9fe:a9fe::]/",  # 6to4 of the cloud metadata address
    ],
)
def test_private_loopback_and_metadata_addresses_are_refused(app, client, url):
    app.config["JOBWARDEN_WEBHOOK_ALLOW_PRIVATE"] = False
    response = client.post("/api/webhooks", json={"url": url, "events": [events.JOB_FAILED]})
    assert response.status_code == 400
    assert response.get_json()["field"] == "url"
    assert client.get("/api/webhooks").get_json()["webhooks"] == []


def test_the_address_is_checked_again_at_delivery_time(app, client, receiver):
    endpoint = add_endpoint(client, receiver.url, [events.JOB_COMPLETED])
    app.config["JOBWARDEN_WEBHOOK_ALLOW_PRIVATE"] = False  # as if the name now resolved to a private address
    run_job()
    delivery.deliver_until_idle()
    assert receiver.started_requests == 0
    log = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["deliveries"]
    assert log[-1]["error"].startswith("refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address")


# --- the API ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, field",
    [
        ({"events": [events.JOB_FAILED]}, "url"),
        ({"url": "ftp://example.com/x", "events": [events.JOB_FAILED]}, "url"),
        ({"url": "http://127.0.0.1/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1/x", "events": ["job.exploded"]}, "events[0]"),
        ({"url": "http://127.0.0.1/x", "events": [events.JOB_FAILED], "format": "teams"}, "format"),
        ({"url": "http://127.0.0.1/x", "events": [events.JOB_FAILED], "secret": "mine"}, "secret"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(app, client, body, field):
    response = client.post("/api/webhooks", json=body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == field


def test_the_secret_is_shown_once_and_endpoints_can_be_removed(app, client):
    created = add_endpoint(client, "http://127.0.0.1:9/hook", [events.JOB_FAILED, events.JOB_COMPLETED])
    assert created["secret"].startswith("whsec_")
    assert created["events"] == [events.JOB_COMPLETED, events.JOB_FAILED]
    listed = client.get("/api/webhooks").get_json()["webhooks"]
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    assert client.delete(f"/api/webhooks/{created['id']}").status_code == 204
    assert client.delete(f"/api/webhooks/{created['id']}").status_code == 404
    assert client.get(f"/api/webhooks/{created['id']}/deliveries").status_code == 404
    assert client.get("/api/webhooks").get_json()["webhooks"] == []


def test_management_needs_an_admin_and_is_refused_when_read_only(database_url):
    from webapp import create_app

    guarded = create_app(test_config(database_url, JOBWARDEN_ADMIN_PASSWORD="pw"))
    with guarded.app_context():
        db.create_all()
        client = guarded.test_client()
        assert client.get("/api/webhooks").status_code == 401
        body = {"url": "https://example.com/x", "events": [events.JOB_FAILED]}
        assert client.post("/api/webhooks", json=body).status_code == 401
        assert "/login" in client.get("/webhooks").headers["Location"]
        db.session.remove()
    read_only = create_app(test_config(database_url, JOBWARDEN_READ_ONLY=True))
    with read_only.app_context():
        client = read_only.test_client()
        assert client.get("/api/webhooks").status_code == 403
        page = client.get("/webhooks")
        assert page.status_code == 403
        assert "read-only" in page.get_data(as_text=True) and "Add endpoint" not in page.get_data(as_text=True)
        db.session.remove()
        db.engine.dispose()


def test_the_openapi_document_describes_the_webhook_routes(app, client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path in (
        "/api/webhooks",
        "/api/webhooks/{webhook_id}",
        "/api/webhooks/{webhook_id}/deliveries",
        "/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
        "/api/webhooks/{webhook_id}/rotate-secret",
    ):
        assert path in paths


# --- the dashboard page -------------------------------------------------------------------------


def test_the_dashboard_page_adds_rotates_redelivers_and_deletes(app, client, receiver):
    page = client.get("/webhooks").get_data(as_text=True)
    assert 'href="/webhooks"' in page  # in the nav
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = client.post("/webhooks", data={"url": receiver.url, "events": [events.JOB_COMPLETED]})
    assert refused.status_code == 400  # no CSRF token
    created = client.post(
        "/webhooks",
        data={"url": receiver.url, "events": [events.JOB_COMPLETED], "format": "standard", "csrf_token": token},
    )
    assert created.status_code == 201
    secret = re.search(r'data-testid="secret-value">([^<]+)<', created.get_data(as_text=True)).group(1)
    endpoint_id = db.session.scalar(select(WebhookEndpoint.id))
    assert secret not in client.get("/webhooks").get_data(as_text=True)  # shown once

    bad = client.post("/webhooks", data={"url": receiver.url, "csrf_token": token})
    assert bad.status_code == 400 and "events: choose at least one event" in bad.get_data(as_text=True)

    run_job()
    deliver_until(lambda: len(receiver.ids()) == 1)
    receiver.bodies(secret)
    log_page = client.get(f"/webhooks/{endpoint_id}").get_data(as_text=True)
    delivery_id = re.search(r'<tr data-delivery-id="(\d+)"', log_page).group(1)
    assert "Redeliver" in log_page and "delivered" in log_page
    form = re.search(r'<form method="post" action="([^"]+)"\s+hx-post="\1"', log_page)
    assert form and form.group(1).endswith(f"/deliveries/{delivery_id}/redeliver")
    again = client.post(form.group(1), data={"csrf_token": token})
    assert again.status_code == 302
    deliver_until(lambda: len(receiver.ids()) == 2)
    assert len(set(receiver.ids())) == 1

    rotated = client.post(f"/webhooks/{endpoint_id}/rotate-secret", data={"csrf_token": token})
    new_secret = re.search(r'data-testid="secret-value">([^<]+)<', rotated.get_data(as_text=True)).group(1)
    assert new_secret != secret
    assert client.post(f"/webhooks/{endpoint_id}/delete", data={"csrf_token": token}).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_rotate_and_delete_forms_post_without_javascript_and_ask_in_the_page(client):
    endpoint = add_endpoint(client, "https://hooks.example.com/<b>jw</b>", [events.JOB_FAILED])
    page = client.get("/webhooks").get_data(as_text=True)
    assert "hx-confirm" not in page
    for name, path in (("rotate", "rotate-secret"), ("delete", "delete")):
        url = f"/webhooks/{endpoint['id']}/{path}"
        form = re.search(rf'<form method="post" action="{url}" hx-post="{url}"(.*?)>', page, re.S)
        assert form, name
        asked = re.search(r'data-confirm="([^"]*)" data-confirm-button="([^"]*)"', form.group(1))
        confirmation = CONFIRMATIONS[name]
        named = f"webhook {endpoint['id']} (https://hooks.example.com/<b>jw</b>)"
        assert asked and markup.unescape(asked.group(1)).startswith(confirmation.question.format(endpoint=named))
        assert confirmation.consequence in markup.unescape(asked.group(1))
        assert asked.group(2) == confirmation.button
    assert "<b>jw</b>" not in page


def test_enable_and_delete_answer_htmx_with_the_region_and_a_form_with_a_redirect(client):
    first = add_endpoint(client, "https://hooks.example.com/a", [events.JOB_FAILED])
    second = add_endpoint(client, "https://hooks.example.com/b", [events.JOB_FAILED])
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/webhooks").get_data(as_text=True)).group(1)
    hx = {"HX-Request": "true"}
    for action, done in (("enable", "enabled"), ("delete", "removed")):
        swapped = client.post(f"/webhooks/{first['id']}/{action}", headers=hx, data={"csrf_token": token})
        region = swapped.get_data(as_text=True)
        assert swapped.status_code == 200 and region.startswith('<div id="webhooks-region">'), action
        assert f"Webhook {first['id']} {done}." in region and "Add an endpoint" in region
    assert f'data-webhook-id="{first["id"]}"' not in region and f'data-webhook-id="{second["id"]}"' in region
    posted = client.post(f"/webhooks/{second['id']}/delete", data={"csrf_token": token})
    assert (posted.status_code, posted.headers["Location"]) == (302, "/webhooks")
    assert f"Webhook {second['id']} removed." in client.get("/webhooks").get_data(as_text=True)


def test_the_monitor_prunes_old_notifications_but_keeps_those_still_to_send(app, client, receiver):
    add_endpoint(client, receiver.url, [events.JOB_COMPLETED, events.JOB_FAILED])
    run_job()
    deliver_until(lambda: len(receiver.ids()) == 1)
    receiver.stop()
    run_job(fail_with="boom")  # never delivered: the receiver is gone
    result = monitor.run_pass(now=utcnow() + timedelta(days=30))
    assert result["pruned_notifications"] == 1
    assert [n.type for n in notifications()] == [events.JOB_FAILED]


def test_the_web_apps_in_process_monitor_delivers(app, receiver, database_url, tmp_path):
    """Through gunicorn with the monitor on (its scheduler runs in the master): HTTP in, webhook out."""
    import requests

    from tests.conftest import INTERNAL_KEY
    from tests.support.server import running_server

    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_MONITOR="on",
        JOBWARDEN_WEBHOOK_ALLOW_PRIVATE="1",
        JOBWARDEN_WEBHOOK_INTERVAL="0.5",
    ) as server:
        created = requests.post(
            f"{server.url}/api/webhooks", timeout=10, json={"url": receiver.url, "events": [events.JOB_COMPLETED]}
        )
        assert created.status_code == 201, created.text
        job = requests.post(f"{server.url}/api/jobs", json={"type": "demo"}, timeout=10).json()
        internal = {"Authorization": f"Bearer {INTERNAL_KEY}"}
        claimed = requests.post(
            f"{server.url}/api/internal/jobs/claim", headers=internal, timeout=10, json={"worker_id": "w1"}
        ).json()["jobs"][0]
        token = {"lease_token": claimed["lease_token"]}
        assert (
            requests.post(
                f"{server.url}/api/internal/jobs/{job['id']}/start", headers=internal, json=token, timeout=10
            ).status_code
            == 200
        )
        assert (
            requests.post(
                f"{server.url}/api/internal/jobs/{job['id']}/complete",
                headers=internal,
                json={**token, "exit_code": 0},
                timeout=10,
            ).status_code
            == 200
        )
        deadline = time.monotonic() + 30
        while not receiver.ids():
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.2)
    (body,) = receiver.bodies(created.json()["secret"])
    assert body["type"] == events.JOB_COMPLETED and body["data"]["job"]["id"] == job["id"]


def test_a_redirect_is_not_followed_and_counts_as_a_failure(app, client, receiver):
    endpoint = add_endpoint(client, receiver.url, [events.JOB_COMPLETED])
    receiver.status = 302
    run_job()
    delivery.deliver_until_idle()
    log = client.get(f"/api/webhooks/{endpoint['id']}/deliveries").get_json()["deliveries"]
    assert log[-1]["status_code"] == 302 and log[-1]["error"].startswith("redirect")
    assert log[0]["outcome"] == "pending"  # retried later


def test_the_public_url_setting_is_checked_and_named():
    from webapp.config import ConfigError, from_environment

    assert (
        from_environment({"JOBWARDEN_PUBLIC_URL": "https://jobs.example.com/"})["JOBWARDEN_PUBLIC_URL"]
        == "https://jobs.example.com"
    )
    with pytest.raises(ConfigError, match="JOBWARDEN_PUBLIC_URL"):
        from_environment({"JOBWARDEN_PUBLIC_URL": "jobs.example.com"})
