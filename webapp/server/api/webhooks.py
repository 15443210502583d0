"""`/api/webhooks`: add, list, remove endpoints, rotate secrets, read delivery logs, redeliver.

Every route needs an admin, reads included (a receiver's URL can be a credential
itself, as Slack's are): webapp.server.access.
"""

from __future__ import annotations

from flask import Blueprint

from ...webhooks import endpoints
from . import webhook_schemas as s
from .public import OPERATOR
from .spec import ApiError, operation

bp = Blueprint("webhooks_api", __name__, url_prefix="/api")
ERRORS = (401, 403, 404)


@bp.errorhandler(endpoints.EndpointNotFound)
def not_found(error: endpoints.EndpointNotFound):
    return ApiError(404, "not_found", str(error))


@bp.errorhandler(endpoints.BadEndpoint)
def bad_endpoint(error: endpoints.BadEndpoint):
    return ApiError(400, "invalid", f"{error.field}: {error}", field=error.field)


@bp.errorhandler(endpoints.EndpointDisabled)
def disabled(error: endpoints.EndpointDisabled):
    return ApiError(409, "conflict", str(error), status="disabled")


def _one(endpoint_id: int) -> dict:
    endpoint = endpoints.get(endpoint_id)
    return endpoints.endpoint_json(endpoint, endpoints.events_of([endpoint_id])[endpoint_id])


@operation(
    bp,
    "POST",
    "/webhooks",
    summary="Add a webhook endpoint",
    body=s.CreateWebhook,
    responses={201: ("Created; the secret is shown only now", s.CreatedWebhook)},
    errors=ERRORS,
    security=OPERATOR,
)
def create_webhook(body: s.CreateWebhook):
    """Deliveries are signed per Standard Webhooks with the returned `whsec_` secret."""
    created = endpoints.create(body.url, list(body.events), body.format)
    return {**_one(created.endpoint.id), "secret": created.secret}, 201


@operation(
    bp,
    "GET",
    "/webhooks",
    summary="List webhook endpoints",
    responses={200: s.WebhookList},
    errors=ERRORS,
    security=OPERATOR,
)
def list_webhooks():
    rows = endpoints.all_endpoints()
    events = endpoints.events_of([endpoint.id for endpoint in rows])
    return {"webhooks": [endpoints.endpoint_json(endpoint, events[endpoint.id]) for endpoint in rows]}


@operation(
    bp,
    "DELETE",
    "/webhooks/<job_id:webhook_id>",
    summary="Remove a webhook endpoint",
    responses={204: ("Removed", None)},
    errors=ERRORS,
    security=OPERATOR,
)
def delete_webhook(webhook_id: int):
    endpoints.remove(webhook_id)
    return "", 204


@operation(
    bp,
    "POST",
    "/webhooks/<job_id:webhook_id>/rotate-secret",
    summary="Replace an endpoint's secret",
    responses={200: ("The new secret, shown only now", s.Secret)},
    errors=ERRORS,
    security=OPERATOR,
)
def rotate_secret(webhook_id: int):
    return {"id": webhook_id, "secret": endpoints.rotate_secret(webhook_id)}


@operation(
    bp,
    "POST",
    "/webhooks/<job_id:webhook_id>/enable",
    summary="Re-enable a disabled endpoint",
    responses={200: s.Webhook},
    errors=ERRORS,
    security=OPERATOR,
)
def enable_webhook(webhook_id: int):
    endpoints.enable(webhook_id)
    return _one(webhook_id)


@operation(
    bp,
    "GET",
    "/webhooks/<job_id:webhook_id>/deliveries",
    summary="An endpoint's deliveries, newest first",
    query=s.DeliveryQuery,
    responses={200: s.DeliveryList},
    errors=ERRORS,
    security=OPERATOR,
)
def list_deliveries(webhook_id: int, query: s.DeliveryQuery):
    rows = endpoints.deliveries(webhook_id, limit=query.limit)
    return {"deliveries": [endpoints.delivery_json(delivery, notification) for delivery, notification in rows]}


@operation(
    bp,
    "POST",
    "/webhooks/<job_id:webhook_id>/deliveries/<job_id:delivery_id>/redeliver",
    summary="Send a delivery again (same webhook-id)",
    responses={202: ("Queued", s.Delivery)},
    errors=(*ERRORS, 409),
    security=OPERATOR,
)
def redeliver(webhook_id: int, delivery_id: int):
    delivery, notification = endpoints.redeliver(webhook_id, delivery_id)
    return endpoints.delivery_json(delivery, notification), 202
