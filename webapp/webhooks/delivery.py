"""The delivery loop: posts queued notifications at least once, in order per job, with backoff.

A round claims due deliveries by setting a lease (`locked_until`) in one short
transaction, posts them concurrently outside any transaction, and records each
answer. Nothing is deleted before it is sent: a sender killed mid-round leaves
its rows leased, and once the lease runs out the next round sends them again.
Receivers de-duplicate by `webhook-id`, which stays the same on every try.

Order per job: a delivery is not claimed while an earlier notification of the
same job to the same endpoint is still pending (not yet delivered or given up).

Once across replicas: on PostgreSQL a round holds `pg_try_advisory_xact_lock`
on a connection of its own, like the monitor's pass; another replica's round
skips. The leases alone would keep two senders off one row anyway.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import exists, or_, select, true, update
from sqlalchemy.orm import aliased

from ..domain.backoff import backoff_delay
from ..domain.timeutil import utcnow
from ..store.extensions import db
from ..store.locks import one_at_a_time
from ..store.models import WebhookDelivery, WebhookEndpoint, WebhookNotification
from . import formats, mail, transport
from .addresses import AddressRefused
from .signing import signed_headers

log = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key of the delivery round ("JWHOOKS" in ASCII); the monitor's differs.
LOCK_KEY = 0x4A57484F4F4B53
# Attempt n+1 waits 5 s · 2^(n−1), at most 4 h (±10 %): the first retry within 10 s, a
# receiver back after a short outage caught up within a minute, then hours, until RETRY_FOR_S.
RETRY_BASE_S = 5.0
RETRY_MAX_S = 4 * 3600.0
EXCERPT_BYTES = 1024
USER_AGENT = "Jobwarden-Webhooks/1"
ROUND_JOB_ID = "webhook-deliveries"

D = WebhookDelivery.__table__
E = WebhookEndpoint.__table__


@dataclass(frozen=True)
class Settings:
    interval_s: float
    timeout_s: float
    lease_s: float
    batch_size: int
    retry_for_s: float
    disable_after_s: float
    allow_private: bool
    public_url: str | None
    smtp_url: str | None
    mail_from: str


def settings() -> Settings:
    c = current_app.config
    return Settings(
        interval_s=float(c["JOBWARDEN_WEBHOOK_INTERVAL"]),
        timeout_s=float(c["JOBWARDEN_WEBHOOK_TIMEOUT_S"]),
        lease_s=float(c["JOBWARDEN_WEBHOOK_LEASE_S"]),
        batch_size=int(c["JOBWARDEN_WEBHOOK_BATCH_SIZE"]),
        retry_for_s=float(c["JOBWARDEN_WEBHOOK_RETRY_FOR_S"]),
        disable_after_s=float(c["JOBWARDEN_WEBHOOK_DISABLE_AFTER_S"]),
        allow_private=bool(c["JOBWARDEN_WEBHOOK_ALLOW_PRIVATE"]),
        public_url=c["JOBWARDEN_PUBLIC_URL"],
        smtp_url=c["JOBWARDEN_SMTP_URL"],
        mail_from=c["JOBWARDEN_SMTP_FROM"],
    )


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    return backoff_delay(attempt, base=RETRY_BASE_S, cap=RETRY_MAX_S, jitter=0.1)


@dataclass(frozen=True)
class Outgoing:
    """One claimed delivery, with what is needed to send it outside any transaction."""

    delivery_id: int
    endpoint_id: int
    attempt: int
    url: str
    secret: str
    body: str
    event_id: str
    notification_created_at: datetime


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    latency_ms: float | None
    error: str | None
    excerpt: str | None

    @property
    def delivered(self) -> bool:
        """A 2xx: HTTP's success, or SMTP's 250 (accepted) for a mail."""
        return self.status_code is not None and 200 <= self.status_code < 300


# --- claim -------------------------------------------------------------------------------


def _claimable(now: datetime, limit: int):
    earlier = aliased(D)
    blocked = exists().where(
        earlier.c.endpoint_id == D.c.endpoint_id,
        earlier.c.job_id == D.c.job_id,
        earlier.c.at.is_(None),
        earlier.c.notification_id < D.c.notification_id,
    )
    return (
        select(D.c.id)
        .join(E, E.c.id == D.c.endpoint_id)
        .where(
            D.c.at.is_(None),
            D.c.next_attempt_at <= now,
            or_(D.c.locked_until.is_(None), D.c.locked_until < now),
            E.c.enabled == true(),
            ~blocked,
        )
        .order_by(D.c.next_attempt_at, D.c.id)
        .limit(limit)
    )


def claim(s: Settings, now: datetime) -> list[Outgoing]:
    """Lease up to a batch of due deliveries (one transaction) and load what sending needs."""
    ids = list(
        db.session.scalars(
            update(D)
            .where(
                D.c.id.in_(_claimable(now, s.batch_size).scalar_subquery()),
                D.c.at.is_(None),
                or_(D.c.locked_until.is_(None), D.c.locked_until < now),
            )
            .values(locked_until=now + timedelta(seconds=s.lease_s))
            .returning(D.c.id)
        )
    )
    if not ids:
        db.session.commit()
        return []
    rows = db.session.execute(
        select(WebhookDelivery, WebhookNotification, WebhookEndpoint)
        .join(WebhookNotification, WebhookNotification.id == WebhookDelivery.notification_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.id)
    ).all()
    claimed = [
        Outgoing(
            delivery_id=delivery.id,
            endpoint_id=endpoint.id,
            attempt=delivery.attempt,
            url=endpoint.url,
            secret=endpoint.secret,
            body=_body(notification, endpoint, s),
            event_id=notification.event_id,
            notification_created_at=notification.created_at,
        )
        for delivery, notification, endpoint in rows
    ]
    db.session.commit()
    return claimed


def _body(notification: WebhookNotification, endpoint: WebhookEndpoint, s: Settings) -> str:
    """What is sent: a mail for a mailto: endpoint, else the endpoint's format."""
    if mail.is_mail(endpoint.url):
        return mail.compose(notification, mail.address_of(endpoint.url), s.mail_from, s.public_url)
    return formats.body(notification, endpoint.format, s.public_url)


# --- send --------------------------------------------------------------------------------


def send(item: Outgoing, s: Settings) -> Answer:
    """One POST to the checked address: one deadline for all of it, no redirects followed,
    at most 1 KB of the answer kept. A mailto: endpoint's message goes to the SMTP server."""
    if mail.is_mail(item.url):
        return _send_mail(item, s)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signed_headers(item.secret, item.event_id, utcnow(), item.body),
    }
    started = time.perf_counter()
    try:
        reply = transport.post(
            item.url,
            item.body.encode("utf-8"),
            headers,
            timeout_s=s.timeout_s,
            allow_private=s.allow_private,
            excerpt_bytes=EXCERPT_BYTES,
        )
    except AddressRefused as refused:
        return Answer(None, None, f"refused: {refused}", None)
    except transport.SendFailed as failure:
        return Answer(None, round((time.perf_counter() - started) * 1000, 3), str(failure), None)
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    error = None
    if 300 <= reply.status_code < 400:
        error = f"redirect (HTTP {reply.status_code}) to {reply.location!r} not followed"
    elif not 200 <= reply.status_code < 300:
        error = f"HTTP {reply.status_code}"
    excerpt = reply.excerpt.decode("utf-8", "replace")[:EXCERPT_BYTES] if reply.excerpt else None
    return Answer(reply.status_code, latency_ms, error, excerpt)


def _send_mail(item: Outgoing, s: Settings) -> Answer:
    started = time.perf_counter()
    try:
        code = mail.send(s.smtp_url, s.mail_from, item.url, item.body, timeout_s=s.timeout_s)
    except (mail.SendFailed, AddressRefused) as failure:
        return Answer(None, round((time.perf_counter() - started) * 1000, 3), str(failure), None)
    return Answer(code, round((time.perf_counter() - started) * 1000, 3), None, None)


# --- record ------------------------------------------------------------------------------


def record(item: Outgoing, answer: Answer, s: Settings, now: datetime) -> None:
    """Write the attempt's outcome; on failure queue the next attempt, or give up after RETRY_FOR_S.

    Conditional on the row still pending: a sender whose lease ran out and whose row was
    sent and recorded by another round records nothing.
    """
    give_up_at = item.notification_created_at + timedelta(seconds=s.retry_for_s)
    next_at = now + timedelta(seconds=retry_delay(item.attempt))
    outcome = "delivered" if answer.delivered else ("retrying" if next_at <= give_up_at else "gave_up")
    error = answer.error
    if outcome == "gave_up":
        error = f"{error}; gave up after {s.retry_for_s / 3600:g} h"
    recorded = db.session.execute(
        update(D)
        .where(D.c.id == item.delivery_id, D.c.at.is_(None))
        .values(
            at=now,
            status_code=answer.status_code,
            latency_ms=answer.latency_ms,
            error=error,
            response_excerpt=answer.excerpt,
            outcome=outcome,
            locked_until=None,
        )
        .returning(D.c.id)
    ).first()
    if recorded is None:
        db.session.rollback()
        return
    endpoint = E.c.id == item.endpoint_id
    if answer.delivered:
        db.session.execute(update(E).where(endpoint, E.c.failing_since.is_not(None)).values(failing_since=None))
        # The receiver answers again: what waits for a later retry goes now.
        db.session.execute(
            update(D)
            .where(D.c.endpoint_id == item.endpoint_id, D.c.at.is_(None), D.c.next_attempt_at > now)
            .values(next_attempt_at=now)
        )
    else:
        if outcome == "retrying":
            row = db.session.execute(select(D.c.notification_id, D.c.job_id).where(D.c.id == item.delivery_id)).one()
            db.session.execute(
                D.insert().values(
                    endpoint_id=item.endpoint_id,
                    notification_id=row.notification_id,
                    job_id=row.job_id,
                    attempt=item.attempt + 1,
                    next_attempt_at=next_at,
                    outcome="pending",
                )
            )
        db.session.execute(update(E).where(endpoint, E.c.failing_since.is_(None)).values(failing_since=now))
        cutoff = now - timedelta(seconds=s.disable_after_s)
        db.session.execute(
            update(E)
            .where(endpoint, E.c.enabled == true(), E.c.failing_since <= cutoff)
            .values(
                enabled=False,
                disabled_at=now,
                disabled_reason=f"failing since more than {s.disable_after_s / 3600:g} h; last error: {error}"[:2000],
            )
        )
    db.session.commit()


# --- rounds ------------------------------------------------------------------------------


def deliver_round(*, db_guard: Callable[[], AbstractContextManager[Any]] = nullcontext) -> dict[str, Any]:
    """Claim, send and record one batch. `db_guard` wraps the database work (the monitor's fork guard)."""
    s = settings()
    with one_at_a_time(LOCK_KEY) as ours:
        if not ours:
            return {"skipped": True, "claimed": 0, "delivered": 0, "failed": 0}
        with db_guard():
            claimed = claim(s, utcnow())
        delivered = failed = 0
        if claimed:
            with ThreadPoolExecutor(max_workers=min(len(claimed), 8), thread_name_prefix="webhook") as pool:
                futures = {pool.submit(send, item, s): item for item in claimed}
                for future in as_completed(futures):
                    answer = future.result()
                    with db_guard():
                        record(futures[future], answer, s, utcnow())
                    delivered += answer.delivered
                    failed += not answer.delivered
        return {"skipped": False, "claimed": len(claimed), "delivered": delivered, "failed": failed}


def deliver_until_idle(
    *, max_seconds: float = 30.0, db_guard: Callable[[], AbstractContextManager[Any]] = nullcontext
) -> int:
    """Rounds back to back while full batches keep coming (bounded in time); returns how many were claimed."""
    deadline = time.monotonic() + max_seconds
    total = 0
    while True:
        result = deliver_round(db_guard=db_guard)
        total += result["claimed"]
        if result["skipped"] or result["claimed"] < settings().batch_size or time.monotonic() > deadline:
            return total


def scheduled_round(app: Flask, db_guard: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
    with app.app_context():
        try:
            deliver_until_idle(db_guard=db_guard)
        except Exception:
            log.exception("webhook delivery round failed")
        finally:
            db.session.remove()


def schedule(scheduler: Any, app: Flask, *, db_guard: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
    """Add the delivery rounds to the monitor's scheduler, on an executor of their own
    so a slow receiver never delays a monitor pass."""
    from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool

    with app.app_context():
        interval = settings().interval_s
    scheduler.add_executor(SchedulerPool(1), "webhooks")
    scheduler.add_job(
        scheduled_round, "interval", seconds=interval, args=[app, db_guard], id=ROUND_JOB_ID, executor="webhooks"
    )


def run_forever(app: Flask, *, echo: Callable[[str], None] = print) -> None:
    """`jobwarden webhooks deliver`: rounds every JOBWARDEN_WEBHOOK_INTERVAL until SIGTERM/SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with app.app_context():
        interval = settings().interval_s
    echo(f"webhook delivery running every {interval:g} s; Ctrl-C to stop")
    try:
        while not stop.is_set():
            with app.app_context():
                try:
                    claimed = deliver_until_idle()
                except Exception:
                    log.exception("webhook delivery round failed")
                    claimed = 0
            if claimed:
                echo(f"{utcnow().isoformat()} delivered or retried {claimed}")
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
