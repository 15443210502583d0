"""Alert rules and alerts as the API, the dashboard and the CLI see them: add, list, remove
rules (each command one transaction), and the one JSON shape of a rule and of an alert.
(Removing and disabling a rule, which resolve its alerts, are webapp.monitor.alerting's.)"""

from __future__ import annotations

import math
from typing import Any, Protocol

from sqlalchemy import delete, func, select

from ..domain.alerts import (
    ANY_SUBJECT,
    DEFAULT_MIN_JOBS,
    FIRING,
    KIND_NAMES,
    MAX_SUBJECT_LENGTH,
    MAX_WINDOW_S,
    QUEUE_PREFIX,
    RULE_KINDS,
    describe,
    format_value,
)
from ..domain.timeutil import isoformat, utcnow
from ..store.extensions import db
from ..store.models import Alert, AlertRule
from ..store.transaction import take_the_write_lock, unit_of_work

HISTORY_SHOWN = 50


class RuleFields(Protocol):
    """What an alert's JSON and message say of its rule: a rule, or a pass's row of one."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def threshold(self) -> float: ...
    @property
    def window_s(self) -> int: ...


class RuleNotFound(LookupError):
    pass


class BadRule(ValueError):
    """Bad input; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check(kind: Any, subject: Any, threshold: Any, window_s: Any, min_jobs: Any) -> dict[str, Any]:
    """The rule's columns, or BadRule naming the first bad field (the CLI and the form reach here unchecked)."""
    if kind not in RULE_KINDS:
        raise BadRule("kind", f"must be one of {', '.join(KIND_NAMES)}")
    spec = RULE_KINDS[kind]
    subject = (subject if isinstance(subject, str) else "").strip() or ANY_SUBJECT
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise BadRule("subject", f"must be at most {MAX_SUBJECT_LENGTH} characters")
    if "\x00" in subject:  # PostgreSQL text holds no NUL: refused on both backends alike
        raise BadRule("subject", "must not contain NUL characters")
    if subject.startswith(QUEUE_PREFIX) and kind != "failure_rate":
        raise BadRule("subject", f"names a {spec.subject} (or *); {QUEUE_PREFIX}NAME is for failure_rate")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise BadRule("threshold", "must be a number")
    if not 0 < threshold <= spec.max_threshold:
        unit = " (a rate: 0.5 is 50 %)" if spec.unit == "%" else ""
        raise BadRule("threshold", f"must be above 0 and at most {spec.max_threshold:g}{unit}")
    if window_s is None:
        window_s = spec.default_window_s
    if isinstance(window_s, bool) or not isinstance(window_s, int) or not 0 <= window_s <= MAX_WINDOW_S:
        raise BadRule("window_s", f"must be a whole number of seconds from 0 to {MAX_WINDOW_S}")
    if spec.uses_window and window_s < 60:
        raise BadRule("window_s", f"{kind} counts over a window: at least 60 s")
    if min_jobs is None:
        min_jobs = DEFAULT_MIN_JOBS if kind == "failure_rate" else 0
    if isinstance(min_jobs, bool) or not isinstance(min_jobs, int) or not 0 <= min_jobs <= 1_000_000:
        raise BadRule("min_jobs", "must be a whole number from 0 to 1000000")
    return {"kind": kind, "subject": subject, "threshold": float(threshold), "window_s": window_s, "min_jobs": min_jobs}


def checked_enabled(enabled: Any) -> bool:
    """`enabled` as given, or BadRule naming it: only true or false (no "yes", no 1)."""
    if not isinstance(enabled, bool):
        raise BadRule("enabled", "must be true or false")
    return enabled


def add(
    kind: Any, subject: Any, threshold: Any, window_s: Any = None, min_jobs: Any = None, enabled: Any = True
) -> AlertRule:
    columns = check(kind, subject, threshold, window_s, min_jobs)
    with unit_of_work():
        rule = AlertRule(**columns, enabled=checked_enabled(enabled), created_at=utcnow())
        db.session.add(rule)
    return rule


def locked(rule_id: int) -> AlertRule:
    """Inside a unit of work: the rule, its row locked against a pass firing one of its
    alerts until this transaction ends (on SQLite, the write lock); RuleNotFound if gone."""
    take_the_write_lock()
    rule = db.session.scalar(select(AlertRule).where(AlertRule.id == rule_id).with_for_update())
    if rule is None:
        raise RuleNotFound(f"alert rule {rule_id} not found")
    return rule


def delete_rule(rule_id: int) -> None:
    """Delete a rule and its alerts (their history goes with it)."""
    db.session.execute(delete(AlertRule).where(AlertRule.id == rule_id))


def one_rule(rule_id: int) -> AlertRule:
    rule = db.session.get(AlertRule, rule_id)
    if rule is None:
        raise RuleNotFound(f"alert rule {rule_id} not found")
    return rule


def all_rules() -> list[AlertRule]:
    return list(db.session.scalars(select(AlertRule).order_by(AlertRule.id)))


def firing_counts() -> dict[int, int]:
    counts: dict[int, int] = {}
    for rule_id in db.session.scalars(select(Alert.rule_id).where(Alert.state == FIRING)):
        counts[rule_id] = counts.get(rule_id, 0) + 1
    return counts


def firing_by_kind() -> dict[str, int]:
    rows = db.session.execute(
        select(AlertRule.kind, func.count())
        .join(Alert, Alert.rule_id == AlertRule.id)
        .where(Alert.state == FIRING)
        .group_by(AlertRule.kind)
    )
    return {kind: int(n) for kind, n in rows}


def recent_alerts(limit: int = HISTORY_SHOWN) -> list[tuple[Alert, AlertRule]]:
    """Firing alerts first (oldest first), then the most recently resolved."""
    rows = db.session.execute(
        select(Alert, AlertRule).join(AlertRule, AlertRule.id == Alert.rule_id).order_by(Alert.id.desc()).limit(limit)
    ).all()
    return sorted(((a, r) for a, r in rows), key=lambda pair: (pair[0].state != FIRING, -pair[0].id))


def rule_json(rule: AlertRule, firing: int = 0) -> dict[str, Any]:
    return {
        "id": rule.id,
        "kind": rule.kind,
        "subject": rule.subject,
        "threshold": rule.threshold,
        "window_s": rule.window_s,
        "min_jobs": rule.min_jobs,
        "enabled": rule.enabled,
        "description": describe(rule.kind, rule.subject, rule.threshold, rule.window_s),
        "firing": firing,
        "created_at": isoformat(rule.created_at),
    }


def alert_message(alert: Alert, rule: RuleFields) -> str:
    """One line for pages, Slack and mail: what is measured, its value, and the threshold
    (or, resolved by its rule's removal or disabling, that)."""
    spec = RULE_KINDS[rule.kind]
    what = f"{spec.subject} {alert.subject}" if alert.subject != ANY_SUBJECT else "all " + spec.subject
    if alert.subject.startswith(QUEUE_PREFIX):
        what = f"queue {alert.subject.removeprefix(QUEUE_PREFIX)}"
    value = format_value(rule.kind, alert.value)
    threshold = format_value(rule.kind, alert.threshold)
    if alert.state == FIRING:
        return f"{rule.kind} of {what} is {value} (threshold {threshold}): {spec.measures}"
    if alert.rule_change:
        return f"resolved: the rule {rule.kind} of {what} was {alert.rule_change} (last {value}, threshold {threshold})"
    return f"resolved: {rule.kind} of {what} is back to {value} (threshold {threshold})"


def alert_json(alert: Alert, rule: RuleFields) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": rule.id,
        "kind": rule.kind,
        "rule_description": describe(rule.kind, rule.subject, rule.threshold, rule.window_s),
        "subject": alert.subject,
        "state": alert.state,
        "since": isoformat(alert.since),
        "resolved_at": isoformat(alert.resolved_at),
        "value": alert.value,
        "threshold": alert.threshold,
        "clear_since": isoformat(alert.clear_since),
        "message": alert_message(alert, rule),
    }
