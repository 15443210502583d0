"""An alert's lifecycle, each change decided by one statement the store lets through once.

- fire: INSERT … ON CONFLICT DO NOTHING against `uq_alerts_firing` (one firing alert per
  rule and subject): of any number of monitor replicas evaluating at once, exactly one
  gets the row back;
- resolve: UPDATE … WHERE state = 'firing' RETURNING: exactly one replica matches;
- re-notify: UPDATE … WHERE state = 'firing' AND notified_at <= the re-notify cutoff.

The caller writes the notification in the same transaction (`webapp.webhooks.outbox.notify`)
only when its statement returned the row, so a replica killed before its commit leaves
neither the change nor its notification, and the next pass decides again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ..domain.alerts import FIRING, RESOLVED
from .extensions import db
from .models import Alert

ALERTS = Alert.__table__


def fire(rule_id: int, subject: str, value: float, threshold: float, now: datetime) -> Alert | None:
    """Open a firing alert of (rule, subject); None when one is firing already."""
    insert = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(ALERTS)
        .values(
            rule_id=rule_id,
            subject=subject,
            state=FIRING,
            since=now,
            value=value,
            threshold=threshold,
            notified_at=now,
        )
        .on_conflict_do_nothing(index_elements=["rule_id", "subject"], index_where=text(f"state = '{FIRING}'"))
        .returning(ALERTS.c.id)
    )
    alert_id = db.session.execute(statement).scalar()
    return None if alert_id is None else db.session.get(Alert, alert_id)


def resolve(alert_id: int, value: float, now: datetime) -> Alert | None:
    """Resolve a firing alert; None when another replica (or an earlier pass) did."""
    return _changed(
        update(Alert)
        .where(Alert.id == alert_id, Alert.state == FIRING)
        .values(state=RESOLVED, resolved_at=now, value=value)
        .returning(Alert)
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
    """Keep firing alerts' values current, one statement (no notification: no state changed)."""
    if values:
        db.session.execute(
            update(Alert).where(Alert.id.in_(sorted(values)), Alert.state == FIRING).values(value=_value_of(values))
        )


def _value_of(values: dict[int, float]) -> Any:
    return case(*((Alert.id == alert_id, value) for alert_id, value in values.items()), else_=Alert.value)


def _changed(statement: Any) -> Alert | None:
    return db.session.execute(
        select(Alert).from_statement(statement), execution_options={"populate_existing": True}
    ).scalar()


def firing() -> list[Alert]:
    """Every firing alert (few: one per rule and subject at most)."""
    return list(db.session.scalars(select(Alert).where(Alert.state == FIRING).order_by(Alert.since, Alert.id)))
