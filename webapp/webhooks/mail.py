"""Endpoints whose url is `mailto:ADDRESS`: each notification goes out as an email over SMTP
(JOBWARDEN_SMTP_URL), through the same outbox, retries and delivery log as a webhook.

The mail names what happened (an alert's rule, subject, value and threshold; a job's
id, type and status) and links to the dashboard (JOBWARDEN_PUBLIC_URL). Its Message-ID
is the event id, the same on every retry, so a mail client can drop duplicates as a
webhook receiver drops them by `webhook-id`. An accepted message is recorded with SMTP's
own reply code 250.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

from ..store.models import WebhookNotification
from .addresses import AddressRefused
from .events import ALERT_FIRING, ALERT_RESOLVED

MAILTO = "mailto:"
SMTP_ACCEPTED = 250
# One plain address: no display name, no second recipient, no header injection.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


class SendFailed(Exception):
    """The SMTP server did not take the message; the message says why."""


def is_mail(url: str) -> bool:
    return url.lower().startswith(MAILTO)


def address_of(url: str) -> str:
    """The one recipient of a `mailto:` URL, or AddressRefused."""
    address = unquote(url[len(MAILTO) :])
    if len(address) > 254 or not _ADDRESS.match(address):
        raise AddressRefused("must be mailto: followed by one email address, such as mailto:ops@example.com")
    return address


def compose(notification: WebhookNotification, to: str, sender: str, public_url: str | None) -> str:
    """The whole message, as sent (headers and text)."""
    data = notification.payload or {}
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(notification.created_at)
    message["Message-ID"] = f"<{notification.event_id}@jobwarden>"
    if "alert" in data and notification.type in (ALERT_FIRING, ALERT_RESOLVED):
        subject, text = _alert_mail(notification.type, data["alert"], public_url)
    elif "job" in data:
        subject, text = _job_mail(notification.type, data["job"], public_url)
    else:
        alert = data.get("alert", {})
        subject = f"[Jobwarden] {notification.type}"
        text = f"{alert.get('message', notification.type)}\n" + _link("Health", public_url, "/health")
    message["Subject"] = subject
    message.set_content(text)
    return message.as_string()


def _link(label: str, public_url: str | None, path: str) -> str:
    if public_url:
        return f"{label}: {public_url}{path}\n"
    return f"{label}: set JOBWARDEN_PUBLIC_URL for a link to the dashboard ({path})\n"


def _alert_mail(event: str, alert: dict, public_url: str | None) -> tuple[str, str]:
    state = "FIRING" if event == ALERT_FIRING else "RESOLVED"
    subject = f"[Jobwarden] {state}: {alert['kind']} of {alert['subject']}"
    when = f"firing since {alert['since']}"
    if event == ALERT_RESOLVED:
        when = f"resolved at {alert['resolved_at']} (firing since {alert['since']})"
    text = (
        f"{alert['message']}\n\n"
        f"Rule {alert['rule']}: {alert['rule_description']}\n"
        f"Subject: {alert['subject']}\n"
        f"State: {when}\n"
        f"Value: {alert['value']:g}, threshold {alert['threshold']:g}\n\n"
        + _link("On the dashboard", public_url, f"/health#alert-{alert['id']}")
        + _link("Alert rules", public_url, "/alerts")
    )
    return subject, text


def _job_mail(event: str, job: dict, public_url: str | None) -> tuple[str, str]:
    subject = f"[Jobwarden] {event}: job {job['id']} ({job['type']})"
    text = f"Job {job['id']} of type {job['type']} is {job['status']} ({event}).\n"
    if job.get("last_error"):
        text += f"\nLast error:\n{str(job['last_error'])[:2000]}\n"
    text += "\n" + _link("On the dashboard", public_url, f"/jobs/{job['id']}")
    return subject, text


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def smtp_settings(smtp_url: str) -> Smtp:
    """JOBWARDEN_SMTP_URL (checked by webapp.config) taken apart."""
    parts = urlsplit(smtp_url)
    return Smtp(
        host=parts.hostname or "",
        port=parts.port or 25,
        tls=parts.scheme == "smtps",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def send(smtp_url: str | None, sender: str, url: str, text: str, *, timeout_s: float) -> int:
    """Hand the composed message to the SMTP server; SMTP_ACCEPTED, or SendFailed."""
    if not smtp_url:
        raise SendFailed("JOBWARDEN_SMTP_URL is not set: mailto: endpoints cannot be sent")
    smtp = smtp_settings(smtp_url)
    to = address_of(url)
    try:
        client = (
            smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout_s, context=ssl.create_default_context())
            if smtp.tls
            else smtplib.SMTP(smtp.host, smtp.port, timeout=timeout_s)
        )
        with client:
            if smtp.username and smtp.password:
                client.login(smtp.username, smtp.password)
            refused = client.sendmail(sender, [to], text.encode("utf-8"))
    except (OSError, smtplib.SMTPException) as failure:
        raise SendFailed(f"SMTP {smtp.host}:{smtp.port}: {failure}") from None
    if refused:
        raise SendFailed(f"SMTP refused {to}: {refused[to]}")
    return SMTP_ACCEPTED
