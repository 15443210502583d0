"""Managing endpoints and reading their delivery logs: what the API and the dashboard page call.

Each command is one transaction (`jobs.unit_of_work`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, func, select

from ..domain.timeutil import isoformat, utcnow
from ..jobs import unit_of_work
from ..store.extensions import db
from ..store.models import WebhookDelivery, WebhookEndpoint, WebhookNotification, WebhookSubscription
from .addresses import AddressRefused, check_public, check_url_shape
from .events import EVENT_TYPES
from .formats import FORMATS
from .mail import address_of, is_mail
from .signing import new_secret

MAX_URL_LENGTH = 2000
DELIVERY_PAGE = 50


class EndpointNotFound(LookupError):
    pass


class BadEndpoint(ValueError):
    """Bad input; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class EndpointDisabled(Exception):
    """Redelivery to a disabled endpoint would wait forever: enable it first."""


@dataclass(frozen=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str


def validate(url: str, events: list[str], format: str) -> tuple[str, list[str]]:
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise BadEndpoint("url", f"must be 1 to {MAX_URL_LENGTH} characters")
    try:
        if is_mail(url):
            address_of(url)
        elif current_app.config["JOBWARDEN_WEBHOOK_ALLOW_PRIVATE"]:
            check_url_shape(url)
        else:
            check_public(url)
    except AddressRefused as refused:
        raise BadEndpoint("url", str(refused)) from None
    if not events:
        raise BadEndpoint("events", "choose at least one event")
    unknown = [event for event in events if event not in EVENT_TYPES]
    if unknown:
        raise BadEndpoint("events", f"unknown event {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    if format not in FORMATS:
        raise BadEndpoint("format", f"must be one of {', '.join(FORMATS)}")
    return url, sorted(set(events), key=EVENT_TYPES.index)


def create(url: str, events: list[str], format: str = "standard") -> Created:
    url, events = validate(url, events, format)
    secret = new_secret()
    with unit_of_work():
        endpoint = WebhookEndpoint(url=url, format=format, secret=secret, enabled=True, created_at=utcnow())
        db.session.add(endpoint)
        db.session.flush()
        db.session.add_all(WebhookSubscription(endpoint_id=endpoint.id, event=event) for event in events)
    return Created(endpoint, secret)


def get(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound(f"webhook {endpoint_id} not found")
    return endpoint


def all_endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def events_of(endpoint_ids: list[int]) -> dict[int, list[str]]:
    subscribed: dict[int, list[str]] = {endpoint_id: [] for endpoint_id in endpoint_ids}
    rows = db.session.execute(
        select(WebhookSubscription.endpoint_id, WebhookSubscription.event).where(
            WebhookSubscription.endpoint_id.in_(endpoint_ids)
        )
    )
    for endpoint_id, event in rows:
        subscribed[endpoint_id].append(event)
    return {key: sorted(value, key=EVENT_TYPES.index) for key, value in subscribed.items()}


def remove(endpoint_id: int) -> None:
    with unit_of_work():
        db.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
        db.session.execute(delete(WebhookSubscription).where(WebhookSubscription.endpoint_id == endpoint_id))
        db.session.delete(get(endpoint_id))


def rotate_secret(endpoint_id: int) -> str:
    """A new secret at once; deliveries from now on are signed with it."""
    secret = new_secret()
    with unit_of_work():
        get(endpoint_id).secret = secret
    return secret


def enable(endpoint_id: int) -> WebhookEndpoint:
    """Re-enable a disabled endpoint: its waiting deliveries go at the next round."""
    with unit_of_work():
        endpoint = get(endpoint_id)
        endpoint.enabled, endpoint.failing_since = True, None
        endpoint.disabled_at, endpoint.disabled_reason = None, None
    return endpoint


def deliveries(endpoint_id: int, *, limit: int = DELIVERY_PAGE) -> list[tuple[WebhookDelivery, WebhookNotification]]:
    """The endpoint's delivery log, newest first (pending attempts included, `at` null)."""
    get(endpoint_id)
    return [
        (delivery, notification)
        for delivery, notification in db.session.execute(
            select(WebhookDelivery, WebhookNotification)
            .join(WebhookNotification, WebhookNotification.id == WebhookDelivery.notification_id)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    ]


def redeliver(endpoint_id: int, delivery_id: int) -> tuple[WebhookDelivery, WebhookNotification]:
    """Send a delivery's notification again, with the same `webhook-id`, at the next round."""
    with unit_of_work():
        endpoint = get(endpoint_id)
        original = db.session.get(WebhookDelivery, delivery_id)
        if original is None or original.endpoint_id != endpoint_id:
            raise EndpointNotFound(f"delivery {delivery_id} of webhook {endpoint_id} not found")
        if not endpoint.enabled:
            raise EndpointDisabled(f"webhook {endpoint_id} is disabled; enable it first")
        last_attempt = db.session.scalar(
            select(func.max(WebhookDelivery.attempt)).where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.notification_id == original.notification_id,
            )
        )
        again = WebhookDelivery(
            endpoint_id=endpoint_id,
            notification_id=original.notification_id,
            job_id=original.job_id,
            attempt=(last_attempt or 0) + 1,
            next_attempt_at=utcnow(),
            outcome="pending",
        )
        db.session.add(again)
        db.session.flush()
        notification = db.session.get(WebhookNotification, original.notification_id)
        assert notification is not None  # the foreign key holds it
    return again, notification


# --- JSON ---------------------------------------------------------------------------------


def endpoint_json(endpoint: WebhookEndpoint, events: list[str]) -> dict[str, Any]:
    """Never the secret: it is shown once, when created or rotated."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": events,
        "format": endpoint.format,
        "enabled": endpoint.enabled,
        "created_at": isoformat(endpoint.created_at),
        "failing_since": isoformat(endpoint.failing_since),
        "disabled_at": isoformat(endpoint.disabled_at),
        "disabled_reason": endpoint.disabled_reason,
    }


def delivery_json(delivery: WebhookDelivery, notification: WebhookNotification) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": notification.event_id,
        "event": notification.type,
        "job_id": delivery.job_id,
        "attempt": delivery.attempt,
        "outcome": delivery.outcome,
        "status_code": delivery.status_code,
        "latency_ms": delivery.latency_ms,
        "error": delivery.error,
        "response_excerpt": delivery.response_excerpt,
        "at": isoformat(delivery.at),
        "next_attempt_at": isoformat(delivery.next_attempt_at) if delivery.at is None else None,
    }


def health() -> dict[str, Any]:
    """Endpoints disabled after failing too long, and those failing now (the /health alerts)."""
    rows = db.session.scalars(
        select(WebhookEndpoint)
        .where((WebhookEndpoint.enabled.is_(False)) | WebhookEndpoint.failing_since.is_not(None))
        .order_by(WebhookEndpoint.id)
    )
    disabled: list[dict[str, Any]] = []
    failing: list[dict[str, Any]] = []
    for endpoint in rows:
        # The host only: a URL can itself be a credential (Slack), and /api/health is public.
        entry = {
            "id": endpoint.id,
            "host": urlsplit(endpoint.url).hostname,
            "failing_since": isoformat(endpoint.failing_since),
            "disabled_at": isoformat(endpoint.disabled_at),
            "reason": endpoint.disabled_reason,
        }
        (failing if endpoint.enabled else disabled).append(entry)
    return {"disabled_endpoints": disabled, "failing_endpoints": failing}
