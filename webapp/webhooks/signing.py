"""Standard Webhooks signing (https://www.standardwebhooks.com) with the `standardwebhooks` package."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_BYTES = 32


def new_secret() -> str:
    """A `whsec_` secret: base64 of 32 random bytes, as the specification's libraries expect."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signed_headers(secret: str, event_id: str, sent_at: datetime, body: str) -> dict[str, str]:
    """`webhook-id` (stable per event), `webhook-timestamp` (this attempt), `webhook-signature`."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, sent_at, body),
    }
