"""Webhooks: notifications of job outcomes and monitor alerts, posted to registered endpoints.

outbox (written in the causing transaction) → delivery (a loop, once across
replicas, at least once, in order per job) → signing (Standard Webhooks) and
formats (standard, slack). `register` adds the API and the dashboard page.
Importing this package stays cheap: `webapp.states` imports the outbox.
"""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from ..extensions import csrf
    from . import api, views

    # JSON routes authenticate with headers, never the session cookie: no CSRF token needed.
    csrf.exempt(api.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
