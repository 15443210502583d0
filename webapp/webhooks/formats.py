"""What a delivery's body says: the Standard Webhooks envelope, or a Slack incoming-webhook message."""

from __future__ import annotations

import json
from typing import Any

from ..domain.timeutil import isoformat
from ..store.models import WebhookNotification
from . import events

FORMATS = ("standard", "slack")

_JOB_HEADLINES = {
    events.JOB_COMPLETED: ":white_check_mark: completed",
    events.JOB_FAILED: ":x: failed",
    events.JOB_CANCELLED: ":no_entry_sign: cancelled",
    events.JOB_ORPHANED: ":warning: orphaned (settled by the health monitor)",
    events.JOB_RECOVERED: ":arrows_counterclockwise: recovered",
}


def body(notification: WebhookNotification, format: str, public_url: str | None) -> str:
    """The exact text posted (and signed)."""
    if format == "slack":
        document: dict[str, Any] = {"text": slack_text(notification, public_url)}
    else:
        document = {
            "id": notification.event_id,
            "type": notification.type,
            "timestamp": isoformat(notification.created_at),
            "data": notification.payload,
        }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _escape(text: str) -> str:
    """Slack's three control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(notification: WebhookNotification, public_url: str | None) -> str:
    data = notification.payload or {}
    if "job" in data:
        job = data["job"]
        name = f"Job {job['id']}"
        link = f"<{public_url}/jobs/{job['id']}|{name}>" if public_url else name
        headline = _JOB_HEADLINES.get(notification.type, notification.type)
        text = f"{link} (`{_escape(str(job['type']))}`) {headline} — status *{job['status']}*"
        error = (job.get("last_error") or "").strip()
        if error and notification.type != events.JOB_COMPLETED:
            text += f"\n>{_escape(error.splitlines()[0][:300])}"
        return text
    alert = data.get("alert", {})
    icon = ":white_check_mark:" if notification.type == events.ALERT_RESOLVED else ":rotating_light:"
    text = f"{icon} Jobwarden alert: {_escape(str(alert.get('message', notification.type)))}"
    if "rule_description" in alert:
        text += f"\nRule {alert['rule']}: {_escape(str(alert['rule_description']))} — since {alert['since']}"
    if public_url:
        anchor = f"#alert-{alert['id']}" if "id" in alert else ""
        text += f" <{public_url}/health{anchor}|Health>"
    return text
