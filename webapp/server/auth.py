"""Who is asking, and may they: the workers' internal key, people (sessions, HTTP Basic,
API tokens), the admin password of JOBWARDEN_ADMIN_PASSWORD, and which requests count as
coming from this site. What each route needs is declared in webapp.server.access.

Every secret is compared in constant time and never logged or echoed. Every way of
presenting a password or a token (HTTP Basic, Bearer `jw_…`, /login) draws on the same
allowance of wrong guesses (webapp.server.guesses).

A person proves themselves with the dashboard's session (after /login or an OpenID
Connect sign-in) or, for scripts, `Authorization: Bearer jw_…` or HTTP Basic NAME:password.
JOBWARDEN_ADMIN_PASSWORD keeps working as one admin named `admin` (HTTP Basic with any
name, or /login without a name), so an install that had only it is never locked out.
With no admin password, no OpenID Connect and no user, nobody needs to sign in (a laptop):
every request acts as an unnamed admin, as before identities existed.

The JSON API never accepts the session cookie: its routes carry no CSRF token, so a
cookie alone must not be enough to change anything.

Writes from another site are refused whatever the credentials: a browser attaches
cached Basic credentials and cookies to a hostile page's form. A JSON API write must
also say `Content-Type: application/json`, which no HTML form can send.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import click
from flask import Flask, current_app, g, request, session
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ..config import SERVING_COMMANDS, ConfigError
from ..domain.roles import Role
from ..jobs import tokens, users
from ..store.extensions import db
from ..store.models import OperatorSessions
from . import guesses

ADMIN_NAME = "admin"  # who JOBWARDEN_ADMIN_PASSWORD signs in as


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


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. `name` None: nobody signed in (anonymous, or an open install);
    `role` None: may read nothing (anonymous where JOBWARDEN_ANONYMOUS_ROLE=none)."""

    name: str | None
    role: Role | None
    via: str  # open, anonymous, password, session, oidc, basic, token:ID
    user_id: int | None = None

    def may(self, needed: Role) -> bool:
        return self.role is not None and self.role >= needed


OPEN = "open"
ANONYMOUS = "anonymous"


USERS_EXIST = "jobwarden.users_exist"  # in the app's extensions, once a user was seen


def sign_in_required() -> bool:
    """Whether anybody must sign in to act: an admin password, OpenID Connect or a user exists
    (disabled or not: with every user disabled nobody may act, the install does not turn open).

    Users are never deleted, so once one exists the app remembers it and asks no more (a query
    per request before). Only that is remembered: while none exists each request asks again,
    since another replica or the command line may add the first user at any moment."""
    config = current_app.config
    if config["JOBWARDEN_ADMIN_PASSWORD"] or config["JOBWARDEN_OIDC_ISSUER"]:
        return True
    if current_app.extensions.get(USERS_EXIST):
        return True
    if not users.any_user():
        return False
    current_app.extensions[USERS_EXIST] = True
    return True


PRINCIPAL_KEY = "jobwarden.principal"  # in the request's environ: `g` can outlive a request (tests)


def current_principal() -> Principal:
    """Who this request acts as, decided once per request."""
    if PRINCIPAL_KEY not in request.environ:
        request.environ[PRINCIPAL_KEY] = _decide_principal()
    principal: Principal = request.environ[PRINCIPAL_KEY]
    return principal


def _decide_principal() -> Principal:
    if not sign_in_required():
        return Principal(name=None, role=Role.ADMIN, via=OPEN)
    presented = _from_header()
    if presented is not None:
        return presented
    if not _is_api_request():
        from_session = session_principal()
        if from_session is not None:
            return from_session
    anonymous_role = current_app.config["JOBWARDEN_ANONYMOUS_ROLE"]
    return Principal(name=None, role=Role.named(anonymous_role) if anonymous_role else None, via=ANONYMOUS)


def undecided_while_the_database_is_down() -> None:
    """The database went away before this request's principal was decided: the error page acts
    as nobody (no buttons, nothing read) instead of asking the database again."""
    request.environ.setdefault(PRINCIPAL_KEY, Principal(name=None, role=None, via=ANONYMOUS))


def _is_api_request() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/metrics")


def decided_principal() -> Principal | None:
    """Who this request acted as, if that was decided (not when guessing was refused first)."""
    return request.environ.get(PRINCIPAL_KEY)


def _from_header() -> Principal | None:
    """The person of `Authorization: Bearer jw_…` or HTTP Basic; None when the header names
    none (a worker's key on its own API is not a person). A wrong one is counted as a guess."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and tokens.looks_like_token(value):
        guesses.refuse_when_exhausted(guesses.PASSWORD)
        holder = tokens.authenticate(value)
        if holder is not None:
            person = holder.person
            return Principal(name=person.name, role=person.role, via=f"token:{holder.token_id}", user_id=person.id)
    elif scheme == "basic":
        try:
            name, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name, password = "", ""
        guesses.refuse_when_exhausted(guesses.PASSWORD)
        found = password_principal(name, password, via="basic")
        if found is not None:
            return found
    else:
        return None
    guesses.count_wrong(guesses.PASSWORD)
    return None


def password_principal(name: str, password: str, *, via: str) -> Principal | None:
    """The admin of JOBWARDEN_ADMIN_PASSWORD (any name) or the user `name` with this password;
    the caller counts a wrong guess. An empty password never matches."""
    if not password:
        return None
    admin_password = current_app.config["JOBWARDEN_ADMIN_PASSWORD"]
    if admin_password and _same_secret(password, admin_password) and (not name or not _is_user(name)):
        return Principal(name=ADMIN_NAME, role=Role.ADMIN, via="password")
    if not name:
        return None
    person = users.authenticate(name, password)
    if person is None:
        return None
    return Principal(name=person.name, role=person.role, via=via, user_id=person.id)


def _is_user(name: str) -> bool:
    """A user of this name exists: then only their own password signs in as them."""
    return users.exists(name)


# --- dashboard login sessions --------------------------------------------------------
# The cookie is signed but cannot be revoked by itself, so it carries what the server
# checks on every request: when the login began, and a generation that logout (and, for a
# user, disabling or a new password) bumps. The admin password's logins also carry a
# fingerprint of the password, so changing JOBWARDEN_ADMIN_PASSWORD ends them.


def _password_fingerprint() -> str:
    """An HMAC of the password under the signing key: it names the password without revealing it."""
    password = current_app.config["JOBWARDEN_ADMIN_PASSWORD"] or ""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, b"operator-session\0" + password.encode(), hashlib.sha256).hexdigest()


def session_generation() -> int:
    """The current generation of the admin password's logins (0 before the first logout)."""
    with db.engine.connect() as connection:
        generation = connection.execute(select(OperatorSessions.generation).where(OperatorSessions.id == 1)).scalar()
    return generation or 0


def end_all_operator_sessions() -> None:
    """Bump the generation: every admin-password login issued so far stops acting, on every replica."""
    bump = update(OperatorSessions).where(OperatorSessions.id == 1).values(generation=OperatorSessions.generation + 1)
    try:
        with db.engine.begin() as connection:
            if connection.execute(bump).rowcount == 0:
                connection.execute(insert(OperatorSessions).values(id=1, generation=1))
    except IntegrityError:  # another logout inserted the row first: bump that one
        with db.engine.begin() as connection:
            connection.execute(bump)


LOGIN_FIELDS = ("operator", "user", "via", "generation", "password", "since")


def start_session(principal: Principal) -> None:
    """A fresh session on sign-in: nothing planted before it carries over."""
    session.clear()
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)  # flask-wtf's copy of the old token
    session.permanent = True  # the browser drops it after the lifetime too
    if principal.user_id is None:
        session.update(operator=True, generation=session_generation(), password=_password_fingerprint())
    else:
        person = users.live_person(principal.user_id)
        session.update(
            user=principal.user_id, via=principal.via, generation=person.session_generation if person else -1
        )
    session["since"] = time.time()


def session_principal() -> Principal | None:
    """Who the session's live login is; a dead login is forgotten, so the browser's cookie
    is replaced (its CSRF token stays)."""
    principal = _check_session()
    if principal is None and any(name in session for name in LOGIN_FIELDS):
        for name in LOGIN_FIELDS:
            session.pop(name, None)
    return principal


def _check_session() -> Principal | None:
    since, generation = session.get("since"), session.get("generation")
    if not isinstance(since, (int, float)) or not isinstance(generation, int):
        return None
    if not 0 <= time.time() - since < current_app.config["JOBWARDEN_SESSION_LIFETIME_S"]:
        return None
    if session.get("operator") is True:
        if not current_app.config["JOBWARDEN_ADMIN_PASSWORD"]:
            return None
        if not hmac.compare_digest(str(session.get("password", "")), _password_fingerprint()):
            return None
        if generation != session_generation():
            return None
        return Principal(name=ADMIN_NAME, role=Role.ADMIN, via="session")
    user_id = session.get("user")
    if not isinstance(user_id, int):
        return None
    person = users.live_person(user_id)
    if person is None or person.session_generation != generation:
        return None
    return Principal(name=person.name, role=person.role, via=str(session.get("via", "session")), user_id=person.id)


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
    """The dashboard shows and accepts job actions: not read-only, and an operator or admin."""
    return writes_allowed() and current_principal().may(Role.OPERATOR)


def can_admin() -> bool:
    """The dashboard shows and accepts management (schedules, queues, webhooks, users)."""
    return writes_allowed() and current_principal().may(Role.ADMIN)


def log_in(name: str, password: str) -> bool:
    """Start a session if `password` is the admin password (with no name) or `name`'s password."""
    guesses.refuse_when_exhausted(guesses.PASSWORD)
    principal = password_principal(name.strip(), password, via="session")
    if principal is None:
        guesses.count_wrong(guesses.PASSWORD)
        return False
    start_session(principal)
    request.environ[PRINCIPAL_KEY] = principal
    return True


def log_out() -> None:
    """End the signed-in person's sessions, here and in other browsers (the admin password's
    sessions are one identity: all of them). Only a live login may do that, so a visitor
    cannot log everyone out."""
    principal = session_principal()
    if principal is not None and principal.user_id is not None:
        users.end_sessions(principal.user_id)
    elif principal is not None:
        end_all_operator_sessions()
    session.clear()


def acting_as(default: str) -> str:
    """The actor a change records (job events, schedule and queue history): the signed-in
    person's name, or `default` (`api`, `operator`) on an install where nobody signs in."""
    return current_principal().name or default


def may_see_payloads() -> bool:
    """Payloads, results, output and logs may hold personal data: with
    JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS only operators and admins see them."""
    return not current_app.config["JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS"] or current_principal().may(Role.OPERATOR)
