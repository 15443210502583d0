"""Alert rules end to end on the real store: a rule fires once and resolves once (with a
controlled clock), re-notifies only after its interval, and each change is one
notification in the outbox; bad rules are a 400 naming the field."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from benchmarks._support import statements_run
from webapp import jobs
from webapp.domain.alerts import describe, format_value
from webapp.domain.timeutil import utcnow
from webapp.jobs import alert_rules
from webapp.monitor import alerting, run_pass
from webapp.monitor.alerting import alert_settings, evaluate
from webapp.server import presence
from webapp.store.extensions import db
from webapp.store.models import Alert, WebhookNotification
from webapp.webhooks import events

from tests.conftest import test_config


@pytest.fixture
def app_config(database_url):
    return test_config(
        database_url,
        JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=True,
        JOBWARDEN_PUBLIC_URL="https://jobs.example.com",
        JOBWARDEN_ALERT_RENOTIFY_S=600.0,
        JOBWARDEN_ALERT_RESOLVE_AFTER_S=300.0,
    )


def listen(client) -> None:
    response = client.post(
        "/api/webhooks",
        json={"url": "https://hooks.example.com/a", "events": [events.ALERT_FIRING, events.ALERT_RESOLVED]},
    )
    assert response.status_code == 201, response.get_json()


def alert_notifications() -> list[tuple[str, dict]]:
    db.session.expire_all()
    rows = db.session.scalars(
        select(WebhookNotification)
        .where(WebhookNotification.type.in_((events.ALERT_FIRING, events.ALERT_RESOLVED)))
        .order_by(WebhookNotification.id)
    )
    return [(row.type, row.payload["alert"]) for row in rows]


def run_failing(job_type: str, count: int, *, fail: bool = True) -> None:
    for _ in range(count):
        job = jobs.create_job(type=job_type, max_attempts=1)
        (claimed,) = jobs.claim_jobs("w1", types=[job_type])
        jobs.start_job(job.id, claimed.lease_token)
        if fail:
            jobs.fail_job(job.id, claimed.lease_token, error="boom", exit_code=1, retryable=False)
        else:
            jobs.complete_job(job.id, claimed.lease_token, result=None, exit_code=0, output="")


def test_a_queue_latency_rule_fires_once_renotifies_after_its_interval_and_resolves_once(app, client):
    listen(client)
    rule = alert_rules.add("queue_latency", "reports", 60)
    job = jobs.create_job(type="report.build", queue="reports")
    start = utcnow()

    run_pass(now=start + timedelta(seconds=30))  # below the threshold
    assert alert_notifications() == []

    for seconds in (61, 90, 300):  # firing: notified once, however many passes see it
        run_pass(now=start + timedelta(seconds=seconds))
    (fired,) = alert_notifications()
    assert fired[0] == events.ALERT_FIRING
    assert (fired[1]["rule"], fired[1]["subject"], fired[1]["state"]) == (rule.id, "reports", "firing")
    assert fired[1]["value"] >= 60 and fired[1]["threshold"] == 60

    run_pass(now=start + timedelta(seconds=61 + 601))  # still firing after the re-notify interval
    assert [kind for kind, _ in alert_notifications()] == [events.ALERT_FIRING, events.ALERT_FIRING]

    jobs.cancel_job(job.id, reason="done waiting")
    for seconds in (700, 710, 999):  # below the threshold, not yet for JOBWARDEN_ALERT_RESOLVE_AFTER_S
        run_pass(now=start + timedelta(seconds=seconds))
    assert [kind for kind, _ in alert_notifications()] == [events.ALERT_FIRING, events.ALERT_FIRING]
    for seconds in (1000, 1010):
        run_pass(now=start + timedelta(seconds=seconds))
    kinds = [kind for kind, _ in alert_notifications()]
    assert kinds == [events.ALERT_FIRING, events.ALERT_FIRING, events.ALERT_RESOLVED]
    resolved = alert_notifications()[-1][1]
    assert resolved["id"] == fired[1]["id"] and resolved["state"] == "resolved"

    answer = client.get("/api/alerts").get_json()["alerts"]
    assert [(a["id"], a["state"], a["subject"]) for a in answer] == [(fired[1]["id"], "resolved", "reports")]


def test_a_failure_rate_rule_needs_its_minimum_of_jobs_and_fires_per_type(app, client):
    listen(client)
    alert_rules.add("failure_rate", "*", 0.5, 900, 4)
    run_failing("video.transcode", 3)
    run_pass()
    assert alert_notifications() == []  # 3 jobs ran: fewer than min_jobs

    run_failing("video.transcode", 1)
    run_failing("video.thumbs", 4, fail=False)
    run_pass()
    run_pass()
    (fired,) = alert_notifications()
    assert fired[1]["subject"] == "video.transcode" and fired[1]["value"] == 1.0
    assert "failure_rate of type video.transcode is 100 %" in fired[1]["message"]


def test_a_schedule_failing_n_times_in_a_row_fires(app, client):
    listen(client)
    from webapp.jobs import schedules

    schedules.create("nightly", {"type": "report.nightly", "every_s": 3600}, source="api", actor="test")
    alert_rules.add("schedule_failing", "nightly", 2)
    for _ in range(2):
        job = schedules.trigger("nightly", actor="test")
        (claimed,) = jobs.claim_jobs("w1", types=["report.nightly"])
        jobs.start_job(job.id, claimed.lease_token)
        jobs.fail_job(job.id, claimed.lease_token, error="no data", exit_code=1, retryable=False)
        run_pass()
    (fired,) = alert_notifications()
    assert (fired[1]["kind"], fired[1]["subject"], fired[1]["value"]) == ("schedule_failing", "nightly", 2.0)


def test_removing_a_rule_resolves_its_firing_alerts_once_and_removes_them(app, client):
    listen(client)
    rule = alert_rules.add("queue_latency", "*", 1)
    jobs.create_job(type="x", queue="a")
    jobs.create_job(type="x", queue="b")
    run_pass(now=utcnow() + timedelta(seconds=5))
    assert {a.state for a in db.session.scalars(select(Alert))} == {"firing"}
    assert client.delete(f"/api/alert-rules/{rule.id}").status_code == 204
    assert db.session.scalars(select(Alert)).all() == []
    notified = alert_notifications()
    assert [kind for kind, _ in notified] == [events.ALERT_FIRING] * 2 + [events.ALERT_RESOLVED] * 2
    resolved = [alert for kind, alert in notified if kind == events.ALERT_RESOLVED]
    assert sorted(a["subject"] for a in resolved) == ["a", "b"]
    assert all(a["state"] == "resolved" and "was removed" in a["message"] for a in resolved)
    assert client.delete(f"/api/alert-rules/{rule.id}").status_code == 404
    run_pass(now=utcnow() + timedelta(seconds=10))
    assert len(alert_notifications()) == 4  # nothing fires or resolves for the gone rule


def test_disabling_a_rule_resolves_its_alerts_once_keeps_it_quiet_and_enabling_fires_anew(app, client):
    """Disabled: its firing alerts resolve (alert.resolved once each, saying so), the rule and
    its history stay, the passes skip it while it still breaches; enabled: it fires anew."""
    listen(client)
    rule = alert_rules.add("queue_latency", "*", 1)
    jobs.create_job(type="x", queue="a")
    jobs.create_job(type="x", queue="b")
    start = utcnow()
    run_pass(now=start + timedelta(seconds=5))
    assert [kind for kind, _ in alert_notifications()] == [events.ALERT_FIRING] * 2

    answer = client.patch(f"/api/alert-rules/{rule.id}", json={"enabled": False})
    assert answer.status_code == 200, answer.get_json()
    assert (answer.get_json()["enabled"], answer.get_json()["firing"]) == (False, 0)
    notified = alert_notifications()
    resolved = [alert for kind, alert in notified if kind == events.ALERT_RESOLVED]
    assert sorted(a["subject"] for a in resolved) == ["a", "b"]
    assert all(a["state"] == "resolved" and "was disabled" in a["message"] for a in resolved)
    db.session.expire_all()
    assert sorted(a.state for a in db.session.scalars(select(Alert))) == ["resolved", "resolved"]  # history kept

    assert client.patch(f"/api/alert-rules/{rule.id}", json={"enabled": False}).status_code == 200  # again: no-op
    for seconds in (10, 20):  # still breaching, not evaluated
        run_pass(now=start + timedelta(seconds=seconds))
    assert len(alert_notifications()) == 4
    (listed,) = client.get("/api/alert-rules").get_json()["rules"]
    assert (listed["id"], listed["enabled"], listed["firing"]) == (rule.id, False, 0)

    assert client.patch(f"/api/alert-rules/{rule.id}", json={"enabled": True}).get_json()["enabled"] is True
    run_pass(now=start + timedelta(seconds=30))
    kinds = [kind for kind, _ in alert_notifications()]
    assert kinds == [events.ALERT_FIRING] * 2 + [events.ALERT_RESOLVED] * 2 + [events.ALERT_FIRING] * 2
    assert client.get("/api/alert-rules").get_json()["rules"][0]["firing"] == 2
    history = [a for a in client.get("/api/alerts").get_json()["alerts"] if a["state"] == "resolved"]
    assert len(history) == 2 and all("was disabled" in a["message"] for a in history)  # not "back to"

    changes = [e for e in client.get("/api/audit").get_json()["entries"] if e["action"].startswith("PATCH")]
    assert [(e["action"], e["target"], e["outcome"]) for e in changes] == [
        ("PATCH /api/alert-rules/<rule_id>", f"rule_id={rule.id}", "ok")
    ] * 3
    assert all(e["actor"] for e in changes)


@pytest.mark.parametrize(
    "body", [{"enabled": "no"}, {"enabled": 0}, {"enabled": None}, {}, {"enabled": True, "threshold": 3}]
)
def test_a_bad_rule_change_is_a_400_naming_the_field_and_changes_nothing(app, client, body):
    rule = alert_rules.add("queue_latency", "*", 1)
    response = client.patch(f"/api/alert-rules/{rule.id}", json=body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == ("threshold" if "threshold" in body else "enabled")
    assert client.get("/api/alert-rules").get_json()["rules"][0]["enabled"] is True


def test_changing_a_missing_rule_is_a_404_and_a_rule_can_be_added_disabled(app, client):
    assert client.patch("/api/alert-rules/999", json={"enabled": False}).status_code == 404
    refused = client.post("/api/alert-rules", json={"kind": "stalled", "threshold": 60, "enabled": "yes"})
    assert refused.status_code == 400 and refused.get_json()["field"] == "enabled"
    added = client.post("/api/alert-rules", json={"kind": "queue_latency", "threshold": 1, "enabled": False})
    assert added.status_code == 201 and added.get_json()["enabled"] is False
    jobs.create_job(type="x", queue="a")
    run_pass(now=utcnow() + timedelta(seconds=5))
    assert db.session.scalars(select(Alert)).all() == []


def test_a_value_wavering_about_the_threshold_stays_one_alert(app, client):
    """Hysteresis: a firing alert resolves only once its value stayed below the threshold for
    JOBWARDEN_ALERT_RESOLVE_AFTER_S (300 s here); dipping below and back keeps it firing,
    unnotified, and restarts the wait."""
    listen(client)
    alert_rules.add("no_worker", "report.build", 2)  # 2 queued jobs of a type no worker takes
    start = utcnow()
    first = jobs.create_job(type="report.build")
    jobs.create_job(type="report.build")
    run_pass(now=start)
    wavering = first
    for step in range(1, 6):  # below (1 job), at (2 jobs), below, …, 100 s apart
        if step % 2:
            jobs.cancel_job(wavering.id, reason="test")
        else:
            wavering = jobs.create_job(type="report.build")
        run_pass(now=start + timedelta(seconds=100 * step))
    assert [kind for kind, _ in alert_notifications()] == [events.ALERT_FIRING]
    (alert,) = client.get("/api/alerts").get_json()["alerts"]
    assert alert["state"] == "firing" and alert["clear_since"] is not None  # below since step 5

    run_pass(now=start + timedelta(seconds=500 + 299))
    assert [kind for kind, _ in alert_notifications()] == [events.ALERT_FIRING]
    run_pass(now=start + timedelta(seconds=500 + 300))
    run_pass(now=start + timedelta(seconds=500 + 400))
    assert [kind for kind, _ in alert_notifications()] == [events.ALERT_FIRING, events.ALERT_RESOLVED]
    assert alert_notifications()[1][1]["value"] == 1.0


def test_workers_replaced_within_the_grace_raise_no_no_worker_alert(app, client):
    """A deploy stops the workers and starts new ones: for those seconds no live worker takes
    the type, and a pass then fired no_worker (and resolved it five minutes later) at every
    deploy with a backlog. A type is unserved once no worker was heard taking it for
    JOBWARDEN_NO_WORKER_AFTER_S (60 s); a fleet gone for longer still fires."""
    listen(client)
    alert_rules.add("no_worker", "report.build", 1)
    jobs.register_worker("old", types=["report.build"])
    presence.say_goodbye("old")
    left = utcnow()
    jobs.create_job(type="report.build")
    run_pass(now=left + timedelta(seconds=20))  # the new workers are still starting
    assert alert_notifications() == []
    run_pass(now=left + timedelta(seconds=61))  # nobody came
    ((kind, fired),) = alert_notifications()
    assert kind == events.ALERT_FIRING and fired["message"].startswith("no_worker of type report.build is 1 job")


def test_a_no_worker_alert_over_a_backlog_past_the_count_cap_says_how_many_wait(app, client, monkeypatch):
    """A pass counts an unserved type's queued jobs only up to a cap (COUNT_CAP, 10,000, or the
    largest threshold), so the alert said "10000 jobs" while 900,000 waited. A type at the cap
    is given its count at the queue-depth sample the pass takes first. Here the cap is 3."""
    monkeypatch.setattr(alerting, "COUNT_CAP", 3)
    listen(client)
    alert_rules.add("no_worker", "report.build", 1)
    for _ in range(5):
        jobs.create_job(type="report.build")
    run_pass()
    ((kind, fired),) = alert_notifications()
    assert kind == events.ALERT_FIRING and fired["value"] == 5.0
    assert fired["message"].startswith("no_worker of type report.build is 5 jobs (threshold 1 job)")


def test_a_count_is_written_in_full(app):
    """`:g` wrote a threshold of 1,200,000 jobs as "1.2e+06 jobs"."""
    assert format_value("no_worker", 1_200_000.0) == "1,200,000 jobs"
    assert format_value("no_worker", 2.5) == "2.5 jobs"
    assert describe("no_worker", "*", 1_200_000, 0) == "no_worker of every type ≥ 1,200,000 jobs"


def test_a_rule_reads_as_english(app):
    """Seen on /alerts under make run: "≥ 1 jobs", "of every workers", "(at least 1 jobs)"."""
    assert describe("no_worker", "*", 1, 0) == "no_worker of every type ≥ 1 job"
    assert describe("schedule_failing", "nightly", 1, 0) == "schedule_failing of schedule nightly ≥ 1 run"
    assert describe("worker_deaths", "*", 3, 3600) == "worker_deaths of all workers ≥ 3 workers over 1 h"
    rule = alert_rules.add("failure_rate", "demo.crash", 0.5, min_jobs=1)
    page = app.test_client().get("/alerts").get_data(as_text=True)
    assert f'<tr data-rule-id="{rule.id}"' in page and "(at least 1 job)" in page and "1 jobs" not in page


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "nope", "subject": "*", "threshold": 1}, "kind"),
        ({"kind": "failure_rate", "subject": "*", "threshold": 1.5, "window_s": 600}, "threshold"),
        ({"kind": "failure_rate", "subject": "*", "threshold": 0.5, "window_s": 5}, "window_s"),
        ({"kind": "queue_latency", "subject": "*", "threshold": "soon"}, "threshold"),
        ({"kind": "queue_latency", "subject": "x" * 211, "threshold": 5}, "subject"),
        ({"kind": "stalled", "subject": "queue:a", "threshold": 5}, "subject"),
        ({"kind": "no_worker", "subject": "a\x00b", "threshold": 1}, "subject"),  # PostgreSQL: was a 500
        ({"kind": "queue_latency", "subject": "*", "threshold": 0}, "threshold"),
    ],
)
def test_a_bad_rule_is_a_400_naming_the_field_and_changes_nothing(app, client, body, field):
    response = client.post("/api/alert-rules", json=body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == field
    assert client.get("/api/alert-rules").get_json()["rules"] == []


def test_rules_are_listed_with_their_description(app, client):
    response = client.post(
        "/api/alert-rules",
        json={"kind": "failure_rate", "subject": "video.transcode", "threshold": 0.6, "window_s": 900},
    )
    assert response.status_code == 201
    (rule,) = client.get("/api/alert-rules").get_json()["rules"]
    assert rule["description"] == "failure_rate of type video.transcode ≥ 60 % over 15 min"
    assert (rule["min_jobs"], rule["firing"]) == (10, 0)


# --- the dashboard -----------------------------------------------------------------------


def csrf_token(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form"
    return found.group(1)


def test_the_alerts_page_adds_and_removes_rules_with_csrf_and_names_a_bad_field(app, client):
    token = csrf_token(client, "/alerts")
    refused = client.post("/alerts/rules", data={"kind": "failure_rate", "threshold": "0.5", "window_s": "600"})
    assert refused.status_code == 400 and alert_rules.all_rules() == []  # no token, nothing done

    bad = client.post("/alerts/rules", data={"kind": "failure_rate", "threshold": "lots", "csrf_token": token})
    assert bad.status_code == 400
    assert "threshold: must be a number" in bad.get_data(as_text=True)

    added = client.post(
        "/alerts/rules",
        data={"kind": "queue_latency", "subject": "<reports>", "threshold": "300", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert added.status_code == 201
    page = added.get_data(as_text=True)
    assert "queue_latency of queue &lt;reports&gt; ≥ 5 min" in page  # escaped
    (rule,) = alert_rules.all_rules()
    disabled = client.post(
        f"/alerts/rules/{rule.id}/disable", data={"csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert disabled.status_code == 200 and f"Rule {rule.id} disabled." in disabled.get_data(as_text=True)
    assert re.search(r'data-testid="rule-state"><span class="muted">disabled</span>', disabled.get_data(as_text=True))
    assert alert_rules.one_rule(rule.id).enabled is False
    refused = client.post(f"/alerts/rules/{rule.id}/enable")
    assert refused.status_code == 400 and alert_rules.one_rule(rule.id).enabled is False  # no token
    enabled = client.post(f"/alerts/rules/{rule.id}/enable", data={"csrf_token": token})
    assert enabled.status_code == 302 and alert_rules.one_rule(rule.id).enabled is True
    removed = client.post(f"/alerts/rules/{rule.id}/delete", data={"csrf_token": token})
    assert removed.status_code == 302 and alert_rules.all_rules() == []


def test_health_shows_firing_alerts_since_when_and_the_history(app, client):
    rule = alert_rules.add("queue_latency", "*", 10)
    job = jobs.create_job(type="t", queue="imports")
    start = utcnow()
    run_pass(now=start + timedelta(seconds=20))
    page = client.get("/health").get_data(as_text=True)
    alert_id = client.get("/api/alerts").get_json()["alerts"][0]["id"]
    assert f'id="alert-{alert_id}"' in page and "queue_latency of queue imports is" in page
    assert "firing since <time" in page and f"(rule {rule.id}: queue_latency of every queue ≥ 10 s)" in page
    assert client.get("/api/health").get_json()["alerts"]["firing"][0]["id"] == alert_id

    assert 'data-testid="clear-since"' not in page

    jobs.cancel_job(job.id, reason="test")
    run_pass(now=start + timedelta(seconds=30))  # below the threshold since: resolved 300 s on
    page = client.get("/health").get_data(as_text=True)
    clear_since = client.get("/api/alerts").get_json()["alerts"][0]["clear_since"]
    assert clear_since is not None and f'id="alert-{alert_id}"' in page
    shown = re.search(r'data-testid="clear-since">below its threshold since (<time[^>]*>)', page)
    assert shown and f'datetime="{clear_since}"' in shown.group(1), page
    assert "resolves once below for 5m 00s" in page
    run_pass(now=start + timedelta(seconds=330))
    page = client.get("/health").get_data(as_text=True)
    assert 'data-testid="firing-alerts"' not in page
    assert 'data-testid="alert-history"' in page and "resolved: queue_latency of queue imports" in page


def test_a_pass_with_no_enabled_rule_sends_no_delete_while_nothing_is_old_enough(app):
    """With every rule disabled the pass's first read returns no row: whether to prune is
    then asked on its own, not assumed (a DELETE each pass took SQLite's write lock)."""
    rule = alert_rules.add("queue_latency", "reports", 60, enabled=False)
    now = utcnow()
    db.session.add(
        Alert(
            rule_id=rule.id,
            subject="reports",
            state="resolved",
            since=now - timedelta(hours=2),
            resolved_at=now - timedelta(hours=1),
            value=1.0,
            threshold=60.0,
            notified_at=now - timedelta(hours=2),
        )
    )
    db.session.commit()

    with statements_run(db.engine) as seen:
        evaluate(now, alert_settings())
        db.session.commit()
    assert [sql for sql, _ in seen if sql.lstrip().upper().startswith("DELETE")] == []
    assert db.session.scalar(select(func.count()).select_from(Alert)) == 1

    evaluate(now + timedelta(days=app.config["JOBWARDEN_RETENTION_DAYS"]), alert_settings())
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Alert)) == 0  # pruned once old enough


def test_a_pass_prunes_resolved_alerts_past_the_history_kept_and_sends_no_delete_otherwise(app):
    """Resolved alerts older than JOBWARDEN_RETENTION_DAYS go; until one is that old a pass
    sends no DELETE at all (on SQLite a DELETE takes the write lock even when it matches
    nothing): the pass's first read says whether there is anything to prune."""
    rule = alert_rules.add("queue_latency", "reports", 60)
    now = utcnow()
    kept = app.config["JOBWARDEN_RETENTION_DAYS"]
    old, recent = (
        Alert(
            rule_id=rule.id,
            subject="reports",
            state="resolved",
            since=at - timedelta(hours=1),
            resolved_at=at,
            value=1.0,
            threshold=60.0,
            notified_at=at,
        )
        for at in (now - timedelta(days=kept, hours=1), now - timedelta(days=kept) + timedelta(hours=1))
    )
    db.session.add_all([old, recent])
    db.session.commit()
    recent_id = recent.id

    run_pass(now=now)
    db.session.expire_all()
    assert db.session.scalars(select(Alert.id).order_by(Alert.id)).all() == [recent_id]

    with statements_run(db.engine) as seen:
        evaluate(now, alert_settings())
        db.session.commit()
    assert [sql for sql, _ in seen if sql.lstrip().upper().startswith("DELETE")] == []
    assert db.session.scalars(select(Alert.id)).all() == [recent_id]
