"""The outbox: a notification is written in the transaction of the change that causes it.

A job's transition writes its notification with its own rows, so the notification
commits or rolls back with the change: a committed failure is never un-notified, a
rolled-back one never notified. On PostgreSQL it is a further CTE of the transition's
single statement (`TransitionOutbox.followup`): a finished job costs no extra round trip. On
SQLite (no DML in CTEs) `TransitionOutbox.write` runs after it in the same transaction. With no
enabled endpoint subscribed to the event, the INSERT … SELECT … WHERE EXISTS writes
nothing (correct across processes with no cache to invalidate); with one, the
deliveries are queued by the same statement (PostgreSQL) or a second one (SQLite).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Executable,
    FromClause,
    Insert,
    String,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.sql.selectable import NamedFromClause

from ..domain.statuses import Status
from ..jobs.serialize import job_json, job_json_sql
from ..store.dialects import on_postgresql
from ..store.extensions import db
from ..store.models import Job, WebhookDelivery, WebhookEndpoint, WebhookNotification, WebhookSubscription
from .events import job_event

ENDPOINTS = WebhookEndpoint.__table__
SUBSCRIPTIONS = WebhookSubscription.__table__
NOTIFICATIONS = WebhookNotification.__table__
DELIVERIES = WebhookDelivery.__table__


def new_event_id() -> str:
    """The Standard Webhooks message id: the same on every retry and redelivery of one event."""
    return f"msg_{uuid.uuid4().hex}"


def new_event_id_sql() -> ColumnElement[str]:
    """`new_event_id` made by PostgreSQL, one per row: a statement may notify for many jobs."""
    return literal("msg_") + func.replace(func.cast(func.gen_random_uuid(), String), "-", "")


def subscribed_endpoints(event: Any) -> Any:
    """Enabled endpoints subscribed to `event` (a bound parameter or value)."""
    return (
        select(SUBSCRIPTIONS.c.endpoint_id)
        .join(ENDPOINTS, ENDPOINTS.c.id == SUBSCRIPTIONS.c.endpoint_id)
        .where(SUBSCRIPTIONS.c.event == event, ENDPOINTS.c.enabled == true())
    )


def _write_notification(
    listeners: FromClause,
    event: Any,
    event_id: Any,
    job_id: Any,
    payload: Any,
    now: Any,
    source: FromClause | None = None,
) -> Insert:
    """INSERT the notification (one per row of `source`) only if `listeners` (the subscribed endpoints) has a row."""
    values = select(event_id, event, job_id, payload, now).where(exists(select(listeners.c.endpoint_id)))
    if source is not None:
        values = values.select_from(source)
    return insert(NOTIFICATIONS).from_select(["event_id", "type", "job_id", "payload", "created_at"], values)


def _queue_deliveries(
    listeners: FromClause, now: Any, notification_id: Any, job_id: Any, written: FromClause | None = None
) -> Insert:
    """INSERT one pending delivery per endpoint in `listeners` (for each notification in `written`)."""
    values = select(listeners.c.endpoint_id, notification_id, job_id, literal(1), now, literal("pending"))
    if written is not None:
        values = values.select_from(written).join(listeners, true())
    return insert(DELIVERIES).from_select(
        ["endpoint_id", "notification_id", "job_id", "attempt", "next_attempt_at", "outcome"], values
    )


def _event_param() -> BindParameter[Any]:
    return bindparam("webhook_event", type_=NOTIFICATIONS.c.type.type)


def _event_id_param() -> BindParameter[Any]:
    return bindparam("webhook_event_id", type_=NOTIFICATIONS.c.event_id.type)


def _listeners(event: Any, postgresql: bool) -> FromClause:
    """The subscribed endpoints, read once per statement where they can be (a CTE on PostgreSQL)."""
    endpoints = subscribed_endpoints(event)
    return endpoints.cte("listeners") if postgresql else endpoints.subquery("listeners")


@lru_cache(maxsize=2)
def _statements(postgresql: bool) -> tuple[Executable, ...]:
    """Built once per process and dialect, so SQLAlchemy compiles them once.

    PostgreSQL: one statement — the notification's INSERT is a CTE whose RETURNING row
    feeds the deliveries' INSERT. SQLite (no DML in CTEs): the notification's INSERT
    returns its id, and a second INSERT (only when a row was written) queues the deliveries.
    """
    event = _event_param()
    job_id = bindparam("job_id", type_=NOTIFICATIONS.c.job_id.type)
    now = bindparam("now", type_=NOTIFICATIONS.c.created_at.type)
    payload = bindparam("payload", type_=NOTIFICATIONS.c.payload.type)
    listeners = _listeners(event, postgresql)
    write_notification = _write_notification(listeners, event, _event_id_param(), job_id, payload, now).returning(
        NOTIFICATIONS.c.id
    )
    if postgresql:
        written = write_notification.cte("written")
        return (_queue_deliveries(listeners, now, written.c.id, job_id, written),)
    notification_id = bindparam("notification_id", type_=DELIVERIES.c.notification_id.type)
    return write_notification, _queue_deliveries(listeners, now, notification_id, job_id)


def notify(event: str, data: dict[str, Any], *, job_id: int | None, now: datetime) -> None:
    """Queue `event` for every enabled endpoint that subscribes to it, in the caller's transaction.

    Writes nothing when nobody listens.
    """
    params = {"webhook_event": event, "job_id": job_id, "now": now, "webhook_event_id": new_event_id(), "payload": data}
    statements = _statements(on_postgresql())
    if len(statements) == 1:
        db.session.execute(statements[0], params)
        return
    write_notification, queue_deliveries = statements
    notification_id = db.session.execute(write_notification, params).scalar()
    if notification_id is not None:
        db.session.execute(queue_deliveries, {**params, "notification_id": notification_id})


class TransitionOutbox:
    """The store's outbox (`webapp.store.moves.Outbox`): a transition's notification, written with it."""

    def event(self, action: str, from_status: Status, to_status: Status, actor: object) -> str | None:
        return job_event(action, from_status, to_status, actor)

    def params(self, event: str) -> dict[str, Any]:
        return {"webhook_event": event}

    def followup(self, rows: NamedFromClause, now: BindParameter[Any]) -> Insert:
        """PostgreSQL: the notification of each moved job in `rows` and its deliveries, as one INSERT
        to run as a CTE of the transition's own statement (so a finished job stays one round trip).

        The payload is `{"job": <job JSON>}` built in SQL from the moved row (`job_json_sql`).
        """
        event = _event_param()
        listeners = _listeners(event, postgresql=True)
        payload = func.jsonb_build_object(literal_column("'job'"), job_json_sql(rows))
        written = (
            _write_notification(listeners, event, new_event_id_sql(), rows.c.id, payload, now, source=rows)
            .returning(NOTIFICATIONS.c.id, NOTIFICATIONS.c.job_id)
            .cte("written")
        )
        return _queue_deliveries(listeners, now, written.c.id, written.c.job_id, written)

    def write(self, event: str, job: Job, now: datetime) -> None:
        """SQLite: the notification of one transition, as separate statements after it (no DML in CTEs)."""
        notify(event, {"job": job_json(job)}, job_id=job.id, now=now)


def prune(cutoff: datetime, *, batch_size: int) -> int:
    """Delete up to `batch_size` notifications created before `cutoff` that nothing waits to send.

    Their delivery log goes with them (ON DELETE CASCADE); one transaction per call.
    """
    pending = exists().where(DELIVERIES.c.notification_id == NOTIFICATIONS.c.id, DELIVERIES.c.at.is_(None))
    batch = (
        select(NOTIFICATIONS.c.id)
        .where(NOTIFICATIONS.c.created_at < cutoff, ~pending)
        .order_by(NOTIFICATIONS.c.created_at)
        .limit(batch_size)
    )
    # Most calls find nothing due: a read answers that without a write transaction.
    ids = list(db.session.scalars(batch))
    if not ids:
        return 0
    try:
        db.session.execute(
            delete(NOTIFICATIONS).where(NOTIFICATIONS.c.id.in_(ids), ~pending)
        )  # a redelivery since wins
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return len(ids)
