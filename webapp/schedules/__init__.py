"""Schedules: recurring jobs, declared in code or through the API, fired once per time across replicas.

timing (when: APScheduler's triggers, time zones) → store (the commands and the fire,
one transaction each) → firing (the round in the monitor's scheduler). `register`
adds the API and the dashboard page.
"""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from ..extensions import csrf
    from . import api, views

    # JSON routes authenticate with headers, never the session cookie: no CSRF token needed.
    csrf.exempt(api.bp)
    csrf.exempt(api.internal_bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.internal_bp)
    app.register_blueprint(views.bp)
