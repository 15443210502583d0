"""Several monitor replicas (real processes) evaluating the same rules at once notify each
change once; a replica killed mid-pass, after its statements and before its commit,
leaves nothing behind, and the next replica notifies once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import alert_rules
from webapp.store.extensions import db
from webapp.store.models import Alert, Job, WebhookNotification
from webapp.webhooks import endpoints, events

from tests.conftest import test_config

pytestmark = pytest.mark.slow
REPLICAS = 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def app_config(database_url):
    return test_config(database_url, JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=True)


def replica(database_url: str, now, start_at: float, mode: str = "commit") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.alert_replica", database_url, now.isoformat(), str(start_at), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def said(line: str, word: str) -> list[int]:
    """The ids a replica printed after `word` ("fired 1,2 resolved 3")."""
    words = line.split(word, 1)[1].split()
    return [int(i) for i in words[0].split(",")] if words and words[0][0].isdigit() else []


def counts() -> tuple[int, int]:
    db.session.expire_all()
    alerts = db.session.scalar(select(func.count()).select_from(Alert))
    notified = db.session.scalar(select(func.count()).where(WebhookNotification.type == events.ALERT_FIRING))
    return alerts, notified


@pytest.fixture
def breaching(app):
    """Three rules each breached by one queued job (three alerts to fire), and a listener."""
    endpoints.create("https://hooks.example.com/x", [events.ALERT_FIRING, events.ALERT_RESOLVED])
    for queue in ("a", "b", "c"):
        alert_rules.add("queue_latency", queue, 10)
        jobs.create_job(type="t", queue=queue)
    return utcnow() + timedelta(seconds=60)


def test_replicas_racing_fire_each_alert_once_and_notify_once(app, database_url, breaching):
    start_at = time.time() + 3
    racers = [replica(database_url, breaching, start_at) for _ in range(REPLICAS)]
    outputs = [racer.communicate(timeout=90)[0] for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), outputs
    fired = [alert_id for line in outputs for alert_id in said(line, "fired")]
    assert sorted(fired) == sorted(set(fired)) and len(fired) == 3, outputs
    assert counts() == (3, 3)


def test_a_replica_killed_mid_pass_leaves_nothing_and_the_next_notifies_once(app, database_url, breaching):
    hung = replica(database_url, breaching, time.time(), mode="hang")
    assert hung.stdout is not None and hung.stdout.readline().strip() == "evaluated"
    os.kill(hung.pid, signal.SIGKILL)
    hung.wait(timeout=30)
    assert counts() == (0, 0)

    survivor = replica(database_url, breaching, time.time())
    out = survivor.communicate(timeout=90)[0]
    assert survivor.returncode == 0, out
    assert counts() == (3, 3)
    again = replica(database_url, breaching, time.time())  # a later pass: nothing new
    again.communicate(timeout=90)
    assert counts() == (3, 3)
    assert {a.state for a in db.session.scalars(select(Alert))} == {"firing"}


def test_removals_racing_each_other_and_passes_resolve_each_alert_once(app, database_url, breaching):
    """Two removals of one rule and two passes race, with every value below its threshold:
    the removed rule's alert resolves once (by a removal or a pass), the others once each."""
    replica(database_url, breaching, time.time()).communicate(timeout=90)
    assert counts() == (3, 3)
    for job in db.session.scalars(select(Job).where(Job.status == "queued")):
        jobs.cancel_job(job.id, reason="test")
    removed = db.session.scalar(select(func.min(Alert.rule_id)))
    later = breaching + timedelta(seconds=10)
    start_at = time.time() + 3
    modes = [f"remove:{removed}", "commit", f"remove:{removed}", "commit"]
    racers = [replica(database_url, later, start_at, mode) for mode in modes]
    outputs = [racer.communicate(timeout=90)[0] for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), outputs
    removals = sorted("removed" if out.startswith("removed") else out.strip() for out in outputs[::2])
    assert removals == ["not found", "removed"], outputs

    db.session.expire_all()
    resolved = db.session.scalars(
        select(WebhookNotification.payload).where(WebhookNotification.type == events.ALERT_RESOLVED)
    ).all()
    assert sorted(payload["alert"]["rule"] for payload in resolved) == sorted(
        {rule.id for rule in alert_rules.all_rules()} | {removed}
    ), outputs
    assert db.session.scalar(select(func.count()).where(Alert.rule_id == removed)) == 0


def test_a_disable_racing_passes_leaves_the_rule_no_firing_alert_and_resolves_each_once(app, database_url, breaching):
    """A disable and three passes race over rules whose alerts have not fired yet: whichever
    commits first, the disabled rule ends with no firing alert, each of its alerts that fired
    resolved once (by the disable), and the other rules' alerts fire once each."""
    disabled = min(rule.id for rule in alert_rules.all_rules())
    start_at = time.time() + 3
    modes = ["commit", f"disable:{disabled}", "commit", "commit"]
    racers = [replica(database_url, breaching, start_at, mode) for mode in modes]
    outputs = [racer.communicate(timeout=90)[0] for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), outputs

    db.session.expire_all()
    assert db.session.scalar(select(func.count()).where(Alert.rule_id == disabled, Alert.state == "firing")) == 0
    notified = db.session.execute(select(WebhookNotification.type, WebhookNotification.payload)).all()
    fired = sorted(payload["alert"]["id"] for kind, payload in notified if kind == events.ALERT_FIRING)
    resolved = sorted(payload["alert"]["id"] for kind, payload in notified if kind == events.ALERT_RESOLVED)
    mine = set(db.session.scalars(select(Alert.id).where(Alert.rule_id == disabled)))
    assert fired == sorted(db.session.scalars(select(Alert.id))), outputs  # each alert fired once
    assert resolved == sorted(mine), outputs  # the disabled rule's alerts resolved once each, no other
    assert db.session.scalar(select(func.count()).where(Alert.state == "firing")) == 2
