"""The webhook API's request and answer models (validation and the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ...webhooks.events import EVENT_TYPES
from .schemas import Body, Text

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class CreateWebhook(Body):
    url: Text = Field(
        min_length=1,
        max_length=2000,
        description="http(s) URL of the receiver; public addresses only unless JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=1.",
    )
    events: list[EventType] = Field(min_length=1, description="Event types to receive.")
    format: Literal["standard", "slack"] = Field(
        "standard", description="`standard` (Standard Webhooks JSON) or `slack` (an incoming-webhook message)."
    )


class Webhook(BaseModel):
    id: int
    url: str
    events: list[str]
    format: str
    enabled: bool
    created_at: str
    failing_since: str | None
    disabled_at: str | None
    disabled_reason: str | None


class CreatedWebhook(Webhook):
    secret: str = Field(description="The whsec_ signing secret; shown only here (and on rotation).")


class WebhookList(BaseModel):
    webhooks: list[Webhook]


class Secret(BaseModel):
    id: int
    secret: str


class Delivery(BaseModel):
    id: int
    event_id: str = Field(description="The webhook-id header: the same on every retry and redelivery.")
    event: str
    job_id: int | None
    attempt: int
    outcome: Literal["pending", "delivered", "retrying", "gave_up"]
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None = Field(description="The first 1 KB of the receiver's answer.")
    at: str | None = Field(description="When the attempt was made; null while pending.")
    next_attempt_at: str | None


class DeliveryList(BaseModel):
    deliveries: list[Delivery]


class DeliveryQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)
