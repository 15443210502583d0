"""Who may do what: the workers' internal key, the operator's password, and which
requests count as coming from this site.

Both secrets are compared in constant time (`hmac.compare_digest`) and never
logged or echoed. An operator proves itself with the dashboard's session
(after /login) or, for scripts, HTTP Basic with the password (any user name).

Writes from another site are refused whatever the credentials: a browser attaches
cached Basic credentials and cookies to a hostile page's form, and without a password
nothing else stands between that form and a job. A JSON API write must also say
`Content-Type: application/json`, which no HTML form can send.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from urllib.parse import urlsplit

import click
from flask import Flask, current_app, request, session
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ..config import SERVING_COMMANDS, ConfigError
from ..store.extensions import db
from ..store.models import OperatorSessions
from . import guesses


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def check_internal_key_configured(app: Flask) -> None:
    """Outside development the internal API needs a strong key: a server (gunicorn, `jobwarden run`)
    refuses to start without one, or with a weak one, and says how to set it. Other commands (db upgrade,
    monitor) serve no API and start regardless."""
    if app.config["JOBWARDEN_ENV"] == "development":
        return
    command = click.get_current_context(silent=True)
    if command is not None and command.info_name not in SERVING_COMMANDS:
        return
    if app.config["JOBWARDEN_INTERNAL_API_KEY"] is not None:
        _check_internal_key_strength(app.config["JOBWARDEN_INTERNAL_API_KEY"])
        return
    raise ConfigError(
        "JOBWARDEN_INTERNAL_API_KEY is not set: the workers' API needs a shared key. "
        "Set it, e.g. `export JOBWARDEN_INTERNAL_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`, "
        "and give the same value to every worker (or set JOBWARDEN_ENV=development on a laptop)."
    )


MIN_INTERNAL_KEY_LENGTH = 16


def _check_internal_key_strength(key: str) -> None:
    """A key of one character, or of spaces, is guessed at once: refuse to serve with it."""
    if key != key.strip() or len(key) < MIN_INTERNAL_KEY_LENGTH:
        raise ConfigError(
            f"JOBWARDEN_INTERNAL_API_KEY is too weak: it needs at least {MIN_INTERNAL_KEY_LENGTH} characters "
            "and no spaces at either end. Generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )


def internal_key_valid() -> bool:
    """The request carries `Authorization: Bearer <the internal key>`."""
    expected = current_app.config["JOBWARDEN_INTERNAL_API_KEY"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not given:
        return False
    guesses.refuse_when_exhausted(guesses.INTERNAL_KEY)
    if _same_secret(given.strip(), expected):
        return True
    guesses.count_wrong(guesses.INTERNAL_KEY)
    return False


def password_required() -> bool:
    return bool(current_app.config["JOBWARDEN_ADMIN_PASSWORD"])


def operator_authenticated(*, session_counts: bool) -> bool:
    """The request comes from an operator: no password is set, HTTP Basic with it, or
    (where `session_counts`, i.e. CSRF-protected dashboard forms) a live login session.

    The JSON API does not accept the session: its routes carry no CSRF token, so
    a cookie alone must not be enough to change a job.
    """
    password = current_app.config["JOBWARDEN_ADMIN_PASSWORD"]
    if not password or (session_counts and operator_session_live()):
        return True
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, given = decoded.partition(":")
    return password_matches(given)


def password_matches(given: str) -> bool:
    """`given` is the password; every wrong guess counts against the shared allowance (webapp.server.guesses)."""
    password = current_app.config["JOBWARDEN_ADMIN_PASSWORD"]
    if not password:
        return False
    guesses.refuse_when_exhausted(guesses.PASSWORD)
    if _same_secret(given, password):
        return True
    guesses.count_wrong(guesses.PASSWORD)
    return False


# --- dashboard login sessions --------------------------------------------------------
# The cookie is signed but cannot be revoked by itself, so it carries three things the
# server checks on every request: the login generation (logout bumps it), a fingerprint
# of the password (changing the password changes it) and when the login began.


def _password_fingerprint() -> str:
    """An HMAC of the password under the signing key: it names the password without revealing it."""
    password = current_app.config["JOBWARDEN_ADMIN_PASSWORD"] or ""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, b"operator-session\0" + password.encode(), hashlib.sha256).hexdigest()


def session_generation() -> int:
    """The current login generation (0 before the first logout)."""
    with db.engine.connect() as connection:
        generation = connection.execute(select(OperatorSessions.generation).where(OperatorSessions.id == 1)).scalar()
    return generation or 0


def end_all_operator_sessions() -> None:
    """Bump the generation: every login session issued so far stops acting, on every replica."""
    bump = update(OperatorSessions).where(OperatorSessions.id == 1).values(generation=OperatorSessions.generation + 1)
    try:
        with db.engine.begin() as connection:
            if connection.execute(bump).rowcount == 0:
                connection.execute(insert(OperatorSessions).values(id=1, generation=1))
    except IntegrityError:  # another logout inserted the row first: bump that one
        with db.engine.begin() as connection:
            connection.execute(bump)


LOGIN_FIELDS = ("operator", "generation", "password", "since")


def start_operator_session() -> None:
    """A fresh session on login: nothing planted before it carries over."""
    session.clear()
    session.permanent = True  # the browser drops it after the lifetime too
    session.update(operator=True, generation=session_generation(), password=_password_fingerprint(), since=time.time())


def operator_session_live() -> bool:
    """The session is a login of the current password and generation, younger than its lifetime.
    A dead one is forgotten, so the browser's cookie is replaced (its CSRF token stays)."""
    live = _check_operator_session()
    if not live and "operator" in session:
        for name in LOGIN_FIELDS:
            session.pop(name, None)
    return live


def _check_operator_session() -> bool:
    if session.get("operator") is not True or not current_app.config["JOBWARDEN_ADMIN_PASSWORD"]:
        return False
    since, generation = session.get("since"), session.get("generation")
    if not isinstance(since, (int, float)) or not isinstance(generation, int):
        return False
    if not 0 <= time.time() - since < current_app.config["JOBWARDEN_SESSION_LIFETIME_S"]:
        return False
    if not hmac.compare_digest(str(session.get("password", "")), _password_fingerprint()):
        return False
    return generation == session_generation()


# --- same-site writes ----------------------------------------------------------------

UNSAFE_FETCH_SITES = frozenset({"cross-site", "same-site"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_write() -> bool:
    return request.method not in SAFE_METHODS


def cross_site_reason() -> str | None:
    """Why this request comes from another site, or None when it comes from this one or
    from no browser at all (scripts, the CLI and workers send neither header).

    `Sec-Fetch-Site` (set by the browser, not by the page) is trusted when present; an
    `Origin` must name this server's host (`null`, from sandboxed frames and some
    redirects, names none)."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if fetch_site in UNSAFE_FETCH_SITES:
        return f"the request comes from another site (Sec-Fetch-Site: {fetch_site})"
    origin = request.headers.get("Origin")
    if origin is not None and not _names_this_host(origin):
        return f"the request comes from another site (Origin: {origin[:200]})"
    return None


def _names_this_host(origin: str) -> bool:
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return parts.netloc.lower() == request.host.lower()


FORM_METHODS = frozenset({"POST"})  # the only write an HTML form can send


def form_could_send() -> bool:
    """A request of a method an HTML form can send (DELETE, PUT and PATCH from another
    site need a CORS preflight, which this server never grants)."""
    return request.method in FORM_METHODS


def json_content_type() -> bool:
    """The body is declared JSON: an HTML form can send only urlencoded, multipart or text/plain."""
    return request.mimetype == "application/json"


def writes_allowed() -> bool:
    return not current_app.config["JOBWARDEN_READ_ONLY"]


def can_act() -> bool:
    """The dashboard shows and accepts actions: not read-only, and no password set or a live login."""
    return writes_allowed() and operator_authenticated(session_counts=True)


def log_in(given: str) -> bool:
    """Start an operator session if `given` is the password (compared in constant time)."""
    if not password_matches(given):
        return False
    start_operator_session()
    return True


def log_out() -> None:
    """End every login session, here and in other browsers: there is one operator identity.
    Only a live login may do that, so a visitor cannot log everyone out."""
    if password_required() and operator_session_live():
        end_all_operator_sessions()
    session.clear()
