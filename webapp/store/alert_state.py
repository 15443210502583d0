"""An alert's lifecycle, each change decided by one statement the store lets through once.

- fire: INSERT … SELECT from the rule while it is enabled … ON CONFLICT DO NOTHING against
  `uq_alerts_firing` (one firing alert per rule and subject): of any number of monitor
  replicas evaluating at once, exactly one gets the row back, and none for a disabled rule;
- resolve: UPDATE … WHERE state = 'firing' (and, with a resolve delay, its value below
  the threshold since before the cutoff) RETURNING: exactly one replica matches;
- clearing / breaching again: one UPDATE each per pass, setting or emptying `clear_since`
  only where it is not so already (no notification: the state did not change);
- re-notify: UPDATE … WHERE state = 'firing' AND notified_at <= the re-notify cutoff.

What a pass starts from (`pass_state`) is one read of plain rows, not ORM objects: the
enabled rules, their firing alerts, and whether any resolved alert is old enough to
prune, so a pass with nothing to prune sends no DELETE (on SQLite a DELETE takes the
write lock even when it matches nothing).

The caller writes the notification in the same transaction (`webapp.webhooks.outbox.notify`)
only when its statement returned the row, so a replica killed before its commit leaves
neither the change nor its notification, and the next pass decides again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Float, String, and_, bindparam, case, delete, exists, literal, select, text, update

from ..domain.alerts import FIRING, RESOLVED
from .dialects import dialect_insert
from .extensions import db
from .models import Alert, AlertRule, UTCDateTime

ALERTS = Alert.__table__


def fire(rule_id: int, subject: str, value: float, threshold: float, now: datetime) -> Alert | None:
    """Open a firing alert of (rule, subject); None when one is firing already, or the rule
    is disabled or gone. The rule is read in the statement itself, its row share-locked on
    PostgreSQL: a disable committed first is seen (no alert), one that comes later waits for
    this pass and then resolves the alert (on SQLite the write lock orders the two)."""
    columns = {
        "rule_id": AlertRule.id,
        "subject": literal(subject, String),
        "state": literal(FIRING, String),
        "since": literal(now, UTCDateTime),
        "value": literal(value, Float),
        "threshold": literal(threshold, Float),
        "notified_at": literal(now, UTCDateTime),
    }
    enabled_rule = (
        select(*columns.values()).where(AlertRule.id == rule_id, AlertRule.enabled).with_for_update(read=True)
    )
    statement = (
        dialect_insert(ALERTS)
        .from_select(list(columns), enabled_rule)
        .on_conflict_do_nothing(index_elements=["rule_id", "subject"], index_where=text(f"state = '{FIRING}'"))
        .returning(ALERTS.c.id)
    )
    alert_id = db.session.execute(statement).scalar()
    return None if alert_id is None else db.session.get(Alert, alert_id)


def resolve(alert_id: int, value: float, now: datetime, clear_before: datetime | None = None) -> Alert | None:
    """Resolve a firing alert (with `clear_before`: only one below its threshold since then);
    None when another replica (or an earlier pass) did, or it breached again meanwhile."""
    held = () if clear_before is None else (Alert.clear_since <= clear_before,)
    return _changed(
        update(Alert)
        .where(Alert.id == alert_id, Alert.state == FIRING, *held)
        .values(state=RESOLVED, resolved_at=now, value=value)
        .returning(Alert)
    )


def resolve_rule(rule_id: int, now: datetime, rule_change: str) -> list[Alert]:
    """Resolve every firing alert of a rule, saying why (`removed`, `disabled`); the ones this statement did."""
    statement = (
        update(Alert)
        .where(Alert.rule_id == rule_id, Alert.state == FIRING)
        .values(state=RESOLVED, resolved_at=now, rule_change=rule_change)
        .returning(Alert)
    )
    return list(
        db.session.scalars(select(Alert).from_statement(statement), execution_options={"populate_existing": True})
    )


def clearing(alert_ids: list[int], now: datetime) -> None:
    """Mark firing alerts whose value went below the threshold (kept from an earlier pass if marked)."""
    if alert_ids:
        db.session.execute(
            update(ALERTS)
            .where(ALERTS.c.id.in_(sorted(alert_ids)), ALERTS.c.state == FIRING, ALERTS.c.clear_since.is_(None))
            .values(clear_since=now)
        )


def breaching_again(alert_ids: list[int]) -> None:
    """Firing alerts whose value is back at the threshold: not clearing any more."""
    if alert_ids:
        db.session.execute(
            update(ALERTS)
            .where(ALERTS.c.id.in_(sorted(alert_ids)), ALERTS.c.state == FIRING, ALERTS.c.clear_since.is_not(None))
            .values(clear_since=None)
        )


def renotify(values: dict[int, float], now: datetime, cutoff: datetime) -> list[Alert]:
    """Claim the re-notification of the alerts in `values` still firing and last notified
    before `cutoff` (one statement), setting their values; the ones claimed."""
    if not values:
        return []
    statement = (
        update(Alert)
        .where(Alert.id.in_(sorted(values)), Alert.state == FIRING, Alert.notified_at <= cutoff)
        .values(notified_at=now, value=_value_of(values))
        .returning(Alert)
    )
    return list(
        db.session.scalars(select(Alert).from_statement(statement), execution_options={"populate_existing": True})
    )


def measure(values: dict[int, float]) -> None:
    """Keep firing alerts' values current (no notification: no state changed). One
    statement, sent with every alert's parameters at once (its text does not grow with
    the number of alerts, so it is built and prepared once)."""
    if values:
        db.session.execute(
            update(ALERTS)
            .where(ALERTS.c.id == bindparam("alert_id"), ALERTS.c.state == FIRING)
            .values(value=bindparam("new_value")),
            [{"alert_id": alert_id, "new_value": value} for alert_id, value in sorted(values.items())],
        )


def _value_of(values: dict[int, float]) -> Any:
    return case(*((Alert.id == alert_id, value) for alert_id, value in values.items()), else_=Alert.value)


def _changed(statement: Any) -> Alert | None:
    return db.session.execute(
        select(Alert).from_statement(statement), execution_options={"populate_existing": True}
    ).scalar()


class RuleRow(NamedTuple):
    """An enabled rule as a pass reads it."""

    id: int
    kind: str
    subject: str
    threshold: float
    window_s: int
    min_jobs: int


class FiringRow(NamedTuple):
    """A firing alert as a pass reads it."""

    id: int
    rule_id: int
    subject: str
    value: float
    notified_at: datetime
    clear_since: datetime | None
    since: datetime


@dataclass(frozen=True)
class PassState:
    rules: list[RuleRow]  # by id
    firing: list[FiringRow]  # of those rules, oldest first (since, id)
    prunable: bool  # a resolved alert is older than the history kept


_RULE_COLUMNS = (
    AlertRule.id,
    AlertRule.kind,
    AlertRule.subject,
    AlertRule.threshold,
    AlertRule.window_s,
    AlertRule.min_jobs,
)
_FIRING_COLUMNS = (
    Alert.id,
    Alert.rule_id,
    Alert.subject,
    Alert.value,
    Alert.notified_at,
    Alert.clear_since,
    Alert.since,
)
_PRUNABLE = exists().where(Alert.state == RESOLVED, Alert.resolved_at < bindparam("resolved_before", type_=UTCDateTime))
# Built once (the pass runs it every few seconds): its only parameter is the prune cutoff.
_PASS_STATE = (
    select(
        *_RULE_COLUMNS,
        *_FIRING_COLUMNS,
        _PRUNABLE.label("prunable"),
    )
    .select_from(AlertRule)
    .outerjoin(Alert, and_(Alert.rule_id == AlertRule.id, Alert.state == FIRING))
    .where(AlertRule.enabled)
    .order_by(AlertRule.id)
)


def pass_state(resolved_before: datetime) -> PassState:
    """The enabled rules and their firing alerts, in one statement (a rule's columns repeat
    beside each of its firing alerts; a rule with none comes once, its alert's columns NULL)."""
    rules: list[RuleRow] = []
    firing: list[FiringRow] = []
    prunable: bool | None = None
    width = len(_RULE_COLUMNS)
    for row in db.session.execute(_PASS_STATE, {"resolved_before": resolved_before}):
        if not rules or rules[-1].id != row[0]:
            rules.append(RuleRow._make(row[:width]))
        if row[width] is not None:
            firing.append(FiringRow._make(row[width:-1]))
        prunable = bool(row[-1])
    if prunable is None:  # no enabled rule, so no row to carry the answer: asked on its own
        prunable = bool(db.session.scalar(select(_PRUNABLE), {"resolved_before": resolved_before}))
    firing.sort(key=lambda alert: (alert.since, alert.id))
    return PassState(rules, firing, prunable)


def prune(resolved_before: datetime) -> None:
    """Forget the alerts resolved before `resolved_before`. On the table, not the ORM: no
    loaded alert is matched against the criteria in Python (9 ms a pass with 100 rules)."""
    db.session.execute(delete(ALERTS).where(ALERTS.c.state == RESOLVED, ALERTS.c.resolved_at < resolved_before))
