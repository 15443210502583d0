"""Who may do what: the workers' internal key and the operator's password.

Both secrets are compared in constant time (`hmac.compare_digest`) and never
logged or echoed. An operator proves itself with the dashboard's session
(after /login) or, for scripts, HTTP Basic with the password (any user name).
"""
from __future__ import annotations

import base64
import binascii
import hmac

import click
from flask import Flask, current_app, request, session

from .config import SERVING_COMMANDS, ConfigError


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))



def check_internal_key_configured(app: Flask) -> None:
    """Outside development the internal API needs a key: a server (gunicorn, `jobwarden run`)
    refuses to start without one and says how to set it. Other commands (db upgrade,
    monitor) serve no API and start regardless."""
    if app.config["JOBWARDEN_INTERNAL_API_KEY"] or app.config["JOBWARDEN_ENV"] == "development":
        return
    command = click.get_current_context(silent=True)
    if command is not None and command.info_name not in SERVING_COMMANDS:
        return
    raise ConfigError(
        "JOBWARDEN_INTERNAL_API_KEY is not set: the workers' API needs a shared key. "
        "Set it, e.g. `export JOBWARDEN_INTERNAL_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`, "
        "and give the same value to every worker (or set JOBWARDEN_ENV=development on a laptop)."
    )


def internal_key_valid() -> bool:
    """The request carries `Authorization: Bearer <the internal key>`."""
    expected = current_app.config["JOBWARDEN_INTERNAL_API_KEY"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not given:
        return False
    return _same_secret(given.strip(), expected)


def password_required() -> bool:
    return bool(current_app.config["JOBWARDEN_ADMIN_PASSWORD"])


def operator_authenticated(*, session_counts: bool) -> bool:
    """The request comes from an operator: no password is set, HTTP Basic with it, or
    (where `session_counts`, i.e. CSRF-protected dashboard forms) a logged-in session.

    The JSON API does not accept the session: its routes carry no CSRF token, so
    a cookie alone must not be enough to change a job.
    """
    password = current_app.config["JOBWARDEN_ADMIN_PASSWORD"]
    if not password or (session_counts and session.get("operator") is True):
        return True
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, given = decoded.partition(":")
    return _same_secret(given, password)


def writes_allowed() -> bool:
    return not current_app.config["JOBWARDEN_READ_ONLY"]


def can_act() -> bool:
    """The dashboard shows and accepts actions: not read-only, and no password set or logged in."""
    if not writes_allowed():
        return False
    return not password_required() or session.get("operator") is True


def log_in(given: str) -> bool:
    """Start an operator session if `given` is the password (compared in constant time)."""
    if not _same_secret(given, current_app.config["JOBWARDEN_ADMIN_PASSWORD"]):
        return False
    session.clear()  # a fresh session on login: nothing planted before it carries over
    session["operator"] = True
    return True


def log_out() -> None:
    session.pop("operator", None)
