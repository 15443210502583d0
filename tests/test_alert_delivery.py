"""Alert delivery to real receivers: mail through a real SMTP server (aiosmtpd) naming the
rule and linking to the dashboard, and a Slack-shaped body to a loopback receiver."""

from __future__ import annotations

import email
import json
import threading
import time
from datetime import timedelta
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import alert_rules
from webapp.monitor import run_pass
from webapp.store.extensions import db
from webapp.store.models import Job
from webapp.webhooks import delivery, events

from tests.conftest import test_config
from tests.support.receiver import Receiver
from tests.support.server import free_port


class Inbox:
    """aiosmtpd's handler: every message the server accepted, parsed."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802  (aiosmtpd's name)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_port():
    return free_port()


@pytest.fixture
def inbox(smtp_port):
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture
def app_config(database_url, smtp_port):
    return test_config(
        database_url,
        JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=True,
        JOBWARDEN_PUBLIC_URL="https://jobs.example.com",
        JOBWARDEN_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        JOBWARDEN_SMTP_FROM="jobwarden@example.com",
        JOBWARDEN_ALERT_RESOLVE_AFTER_S=0.0,  # resolved at the first pass below the threshold: on the real clock
    )


def deliver_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "nothing arrived in time"
        delivery.deliver_until_idle()
        time.sleep(0.1)


def fire_latency_alert(queue: str = "reports") -> tuple[int, int]:
    """A queue_latency rule over a queued job 2 minutes old; returns (rule id, job id)."""
    rule = alert_rules.add("queue_latency", queue, 60)
    job = jobs.create_job(type="report.build", queue=queue)
    # Made 2 minutes old (not a status change): deliveries are due on the real clock.
    two_minutes_ago = utcnow() - timedelta(seconds=120)
    db.session.execute(
        update(Job).where(Job.id == job.id).values(created_at=two_minutes_ago, run_after=two_minutes_ago)
    )
    db.session.commit()
    run_pass()
    return rule.id, job.id


def test_a_mailto_endpoint_gets_a_mail_naming_the_rule_and_linking_to_the_dashboard(app, client, inbox):
    added = client.post(
        "/api/webhooks",
        json={"url": "mailto:oncall@example.com", "events": [events.ALERT_FIRING, events.ALERT_RESOLVED]},
    )
    assert added.status_code == 201, added.get_json()
    rule_id, job_id = fire_latency_alert()
    deliver_until(lambda: len(inbox.messages) == 1)

    (recipients, mail) = inbox.messages[0]
    assert recipients == ["oncall@example.com"]
    assert mail["From"] == "jobwarden@example.com"
    assert mail["Subject"] == "[Jobwarden] FIRING: queue_latency of reports"
    text = mail.get_payload(decode=True).decode()
    alert_id = client.get("/api/alerts").get_json()["alerts"][0]["id"]
    assert f"Rule {rule_id}: queue_latency of queue reports ≥ 1 min" in text
    assert f"https://jobs.example.com/health#alert-{alert_id}" in text
    assert mail["Message-ID"].startswith("<msg_")
    (logged,) = client.get(f"/api/webhooks/{added.get_json()['id']}/deliveries").get_json()["deliveries"]
    assert (logged["status_code"], logged["error"]) == (250, None)

    jobs.cancel_job(job_id, reason="test")
    run_pass()
    deliver_until(lambda: len(inbox.messages) == 2)
    assert inbox.messages[1][1]["Subject"] == "[Jobwarden] RESOLVED: queue_latency of reports"


def test_a_mail_the_smtp_server_cannot_take_is_logged_and_retried(app, client, inbox, smtp_port):
    added = client.post("/api/webhooks", json={"url": "mailto:oncall@example.com", "events": [events.ALERT_FIRING]})
    app.config["JOBWARDEN_SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nobody listens there
    fire_latency_alert()
    delivery.deliver_until_idle()
    logs = client.get(f"/api/webhooks/{added.get_json()['id']}/deliveries").get_json()["deliveries"]
    (tried,) = [log for log in logs if log["attempt"] == 1]
    assert tried["status_code"] is None and tried["error"].startswith("SMTP 127.0.0.1:")
    assert [log["attempt"] for log in logs if log["at"] is None] == [2]  # the retry waits
    assert inbox.messages == []


@pytest.mark.parametrize(
    "url", ["mailto:", "mailto:a@b.com,c@d.com", "mailto:Eve <e@x.com>", "mailto:a@b.com\r\nBcc: x@y"]
)
def test_a_bad_mailto_address_is_a_400_naming_the_url(app, client, url):
    response = client.post("/api/webhooks", json={"url": url, "events": [events.ALERT_FIRING]})
    assert response.status_code == 400
    assert response.get_json()["field"] == "url"


def test_a_slack_endpoint_gets_a_slack_message_of_the_alert(app, client):
    receiver = Receiver()
    receiver.start()
    try:
        added = client.post(
            "/api/webhooks", json={"url": receiver.url, "events": [events.ALERT_FIRING], "format": "slack"}
        )
        assert added.status_code == 201
        fire_latency_alert("exports")
        deliver_until(lambda: len(receiver.snapshot()) == 1)
        body = json.loads(receiver.snapshot()[0].body)
    finally:
        receiver.stop()
    assert list(body) == ["text"]  # Slack incoming webhooks take {"text": …}
    alert_id = client.get("/api/alerts").get_json()["alerts"][0]["id"]
    assert body["text"].startswith(":rotating_light: Jobwarden alert: queue_latency of queue exports is 2.0 min")
    assert f"<https://jobs.example.com/health#alert-{alert_id}|Health>" in body["text"]
