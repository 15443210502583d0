"""The outbox: a notification is written in the transaction of the change that causes it.

`webapp.states` calls `notify_transition` after each transition's own rows, so
the notification commits or rolls back with the change: a committed failure is
never un-notified, a rolled-back one never notified. With no enabled endpoint
subscribed to the event, the INSERT … SELECT … WHERE EXISTS writes nothing (one
cheap statement, correct across processes with no cache to invalidate); with
one, the same statement (PostgreSQL) or a second one (SQLite) queues a delivery
per subscribed endpoint.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Executable,
    bindparam,
    delete,
    exists,
    insert,
    literal,
    select,
    true,
)

from ..extensions import db
from ..models import (
    Job,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookNotification,
    WebhookSubscription,
)

ENDPOINTS = WebhookEndpoint.__table__
SUBSCRIPTIONS = WebhookSubscription.__table__
NOTIFICATIONS = WebhookNotification.__table__
DELIVERIES = WebhookDelivery.__table__


def new_event_id() -> str:
    """The Standard Webhooks message id: the same on every retry and redelivery of one event."""
    return f"msg_{uuid.uuid4().hex}"


def subscribed_endpoints(event: Any) -> Any:
    """Enabled endpoints subscribed to `event` (a bound parameter or value)."""
    return (
        select(SUBSCRIPTIONS.c.endpoint_id)
        .join(ENDPOINTS, ENDPOINTS.c.id == SUBSCRIPTIONS.c.endpoint_id)
        .where(SUBSCRIPTIONS.c.event == event, ENDPOINTS.c.enabled == true())
    )


@lru_cache(maxsize=2)
def _statements(postgresql: bool) -> tuple[Executable, ...]:
    """Built once per process and dialect, so SQLAlchemy compiles them once.

    PostgreSQL: one statement — the notification's INSERT is a CTE whose RETURNING row
    feeds the deliveries' INSERT. SQLite (no DML in CTEs): the notification's INSERT
    returns its id, and a second INSERT (only when a row was written) queues the deliveries.
    """
    event = bindparam("event", type_=NOTIFICATIONS.c.type.type)
    job_id = bindparam("job_id", type_=NOTIFICATIONS.c.job_id.type)
    now = bindparam("now", type_=NOTIFICATIONS.c.created_at.type)
    write_notification = (
        insert(NOTIFICATIONS)
        .from_select(
            ["event_id", "type", "job_id", "payload", "created_at"],
            select(
                bindparam("event_id", type_=NOTIFICATIONS.c.event_id.type),
                event,
                job_id,
                bindparam("payload", type_=NOTIFICATIONS.c.payload.type),
                now,
            ).where(exists(subscribed_endpoints(event))),
        )
        .returning(NOTIFICATIONS.c.id)
    )
    endpoints = subscribed_endpoints(event).subquery()
    columns = ["endpoint_id", "notification_id", "job_id", "attempt", "next_attempt_at", "outcome"]
    if postgresql:
        written = write_notification.cte("written")
        both = (
            insert(DELIVERIES)
            .from_select(
                columns,
                select(endpoints.c.endpoint_id, written.c.id, job_id, literal(1), now, literal("pending"))
                .select_from(written)
                .join(endpoints, true()),
            )
            .add_cte(written)
        )
        return (both,)
    queue_deliveries = insert(DELIVERIES).from_select(
        columns,
        select(
            endpoints.c.endpoint_id,
            bindparam("notification_id", type_=DELIVERIES.c.notification_id.type),
            job_id,
            literal(1),
            now,
            literal("pending"),
        ),
    )
    return write_notification, queue_deliveries


def notify(event: str, data: dict[str, Any], *, job_id: int | None, now: datetime) -> None:
    """Queue `event` for every enabled endpoint that subscribes to it, in the caller's transaction.

    Writes nothing when nobody listens.
    """
    params = {"event": event, "job_id": job_id, "now": now, "event_id": new_event_id(), "payload": data}
    statements = _statements(db.session.get_bind().dialect.name == "postgresql")
    if len(statements) == 1:
        db.session.execute(statements[0], params)
        return
    write_notification, queue_deliveries = statements
    notification_id = db.session.execute(write_notification, params).scalar()
    if notification_id is not None:
        db.session.execute(queue_deliveries, {**params, "notification_id": notification_id})


def notify_transition(job: Job, action: str, from_status: str, actor: object, now: datetime) -> None:
    """The webhook event of one transition, if it raises one (see `events.job_event`)."""
    # Imported here: webapp.states imports this module, and these import webapp.states.
    from ..api.serialize import job_json
    from .events import job_event

    event = job_event(action, from_status, job.status, actor)
    if event is not None:
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
