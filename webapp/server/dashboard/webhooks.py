"""The `/webhooks` dashboard page: endpoints, the add form (the secret shown once), rotate,
enable, delete, and each endpoint's delivery log with Redeliver. Operators only; a
read-only deployment shows no management at all."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from ...store.models import WebhookEndpoint
from ...webhooks import endpoints
from ...webhooks.events import EVENT_TYPES
from ...webhooks.formats import FORMATS
from .regions import render_region, wants_region
from .views import csrf_refused, dashboard_context


@dataclass(frozen=True)
class Confirmation:
    """What the in-page dialog asks before an endpoint action (as webapp.domain.actions does for jobs)."""

    button: str  # the dialog's confirming button
    question: str  # "{endpoint}" names the endpoint
    consequence: str

    def text(self, endpoint: WebhookEndpoint) -> str:
        return f"{self.question.format(endpoint=f'webhook {endpoint.id} ({endpoint.url})')} {self.consequence}"


CONFIRMATIONS = {
    "rotate": Confirmation(
        "Rotate secret",
        "Rotate the secret of {endpoint}?",
        "The current secret stops working at once: the receiver must verify with the new one, shown only once.",
    ),
    "delete": Confirmation(
        "Delete webhook",
        "Delete {endpoint}?",
        "Nothing more is sent to it, and its delivery log and waiting deliveries are removed.",
    ),
}

bp = Blueprint("webhooks", __name__)
bp.context_processor(dashboard_context)
bp.register_error_handler(CSRFError, csrf_refused)


@bp.errorhandler(endpoints.EndpointNotFound)
def not_found(error: endpoints.EndpointNotFound):
    return render_template("error.html", message=str(error)), 404


def _page(status: int = 200, **shown):
    """The list and add form; `shown` carries a secret to show once, or a form error."""
    rows = endpoints.all_endpoints()
    context = dict(
        endpoints=rows,
        events=endpoints.events_of([e.id for e in rows]),
        event_types=EVENT_TYPES,
        formats=FORMATS,
        confirmations=CONFIRMATIONS,
        **shown,
    )
    return render_region("webhooks/index.html", "webhooks/_region.html", **context), status


def _done(message: str):
    """HTMX swaps the region, which says what was done; a form posted without JavaScript
    goes back to the page, where the flash says it."""
    if wants_region():
        return _page(message=message)
    flash(message, "ok")
    return redirect(url_for("webhooks.index"))


@bp.get("/webhooks")
def index():
    return _page()


@bp.post("/webhooks")
def create():
    url, events = request.form.get("url", ""), request.form.getlist("events")
    format = request.form.get("format") or "standard"
    form = {"url": url, "events": events, "format": format}
    try:
        created = endpoints.create(url, events, format)
    except endpoints.BadEndpoint as error:
        return _page(400, error=f"{error.field}: {error}", form=form)
    # Rendered, not flashed: a flash would keep the secret in the session cookie.
    return _page(201, secret=created.secret, secret_for=created.endpoint.id)


@bp.post("/webhooks/<job_id:webhook_id>/rotate-secret")
def rotate_secret(webhook_id: int):
    return _page(secret=endpoints.rotate_secret(webhook_id), secret_for=webhook_id)


@bp.post("/webhooks/<job_id:webhook_id>/enable")
def enable(webhook_id: int):
    endpoints.enable(webhook_id)
    return _done(f"Webhook {webhook_id} enabled.")


@bp.post("/webhooks/<job_id:webhook_id>/delete")
def delete(webhook_id: int):
    endpoints.remove(webhook_id)
    return _done(f"Webhook {webhook_id} removed.")


@bp.get("/webhooks/<job_id:webhook_id>")
def deliveries(webhook_id: int):
    endpoint = endpoints.get(webhook_id)
    return render_template(
        "webhooks/deliveries.html",
        endpoint=endpoint,
        events=endpoints.events_of([webhook_id])[webhook_id],
        deliveries=endpoints.deliveries(webhook_id),
    )


@bp.post("/webhooks/<job_id:webhook_id>/deliveries/<job_id:delivery_id>/redeliver")
def redeliver(webhook_id: int, delivery_id: int):
    try:
        again, notification = endpoints.redeliver(webhook_id, delivery_id)
        flash(f"Event {notification.event_id} queued again (attempt {again.attempt}).", "ok")
    except endpoints.EndpointDisabled as refused:
        flash(f"Nothing was done — {refused}.", "refused")
    return redirect(url_for("webhooks.deliveries", webhook_id=webhook_id))
