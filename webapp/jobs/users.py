"""People: local accounts with argon2 password hashes, accounts made by an OpenID Connect
sign-in, and their roles. Shared by `jobwarden users`, the sign-in (webapp.server.auth) and
the dashboard.

Passwords are hashed with argon2id (argon2-cffi's current defaults, which it raises as
hardware grows; an old hash is re-hashed on the next good sign-in). A name that does not
exist costs the same hashing as a wrong password, so timing does not tell which names exist.
Disabling a user bumps their session generation: every cookie they hold stops acting.

argon2-cffi (and its cffi bindings) is loaded on the first password hashed or checked: a
server whose dashboard and API are used without passwords (tokens, a reverse proxy, no
credentials) never loads it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from ..domain.roles import Role
from ..domain.timeutil import isoformat, utcnow
from ..store.column_limits import column_length
from ..store.extensions import db
from ..store.models import User
from ..store.transaction import unit_of_work
from .query_params import BadQuery

if TYPE_CHECKING:
    from argon2 import PasswordHasher

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}")
MIN_PASSWORD_CHARS = 12
ONE_TIME_PASSWORD_BYTES = 18  # 24 URL-safe characters


@cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified when the name is unknown, so a missing user takes as long as a wrong password."""
    return _hasher().hash(secrets.token_urlsafe(16))


class UserNotFound(BadQuery):
    def __init__(self, name: str):
        super().__init__("name", f"no user named {name!r}")


@dataclass(frozen=True)
class Person:
    """Who a request acts as: enough to decide and to audit, never a password."""

    id: int
    name: str
    role: Role
    session_generation: int


def _person(user: User) -> Person:
    return Person(id=user.id, name=user.name, role=Role.named(user.role), session_generation=user.session_generation)


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise BadQuery("name", "1–200 letters, digits or . _ @ + -, starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise BadQuery("password", f"at least {MIN_PASSWORD_CHARS} characters")
    return password


def one_time_password() -> str:
    return secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)


def add_user(name: str, role: Role, password: str) -> Person:
    """A local user; BadQuery when the name is taken or the password too short."""
    check_name(name)
    check_password(password)
    with unit_of_work():
        if db.session.execute(select(User.id).where(User.name == name)).first():
            raise BadQuery("name", f"a user named {name!r} exists already")
        user = User(name=name, role=role.label, password_hash=_hasher().hash(password), created_at=utcnow())
        db.session.add(user)
        db.session.flush()
        return _person(user)


def all_users() -> list[User]:
    return list(db.session.execute(select(User).order_by(User.name)).scalars())


def any_user() -> bool:
    """Whether any account exists (then sign-in is required to act).

    An install without users asks before every request's own unit of work (webapp.server.auth).
    On PostgreSQL the read runs on a pooled connection of its own in autocommit, one round trip
    that leaves the session untouched: in the session's transaction it made a create that
    follows join it (BEGIN, the read, the create, COMMIT: four round trips where two do), and a
    unit of the session's own in autocommit ran the read requests' bound (`SET LOCAL
    statement_timeout`, webapp.server.query_time) outside any transaction, a round trip for
    nothing. It also costs half the CPU of either (110-140 against 220-360 us). Inside a
    transaction, and on SQLite (whose connections are not pooled: a second one per request),
    it reads in the session's transaction as before."""
    first_user = select(User.id).limit(1)
    session = db.session()
    if session.in_transaction() or session.get_bind().dialect.name != "postgresql":
        return session.execute(first_user).first() is not None
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return connection.execute(first_user).first() is not None


def exists(name: str) -> bool:
    return db.session.execute(select(User.id).where(User.name == name)).first() is not None


def _named(name: str) -> User:
    user = db.session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise UserNotFound(name)
    return user


def disable_user(name: str) -> None:
    """No more sign-ins, no more requests with the user's sessions or tokens."""
    with unit_of_work():
        user = _named(name)
        db.session.execute(
            update(User)
            .where(User.id == user.id)
            .values(disabled_at=user.disabled_at or utcnow(), session_generation=User.session_generation + 1)
        )


def enable_user(name: str) -> None:
    with unit_of_work():
        db.session.execute(update(User).where(User.id == _named(name).id).values(disabled_at=None))


def reset_password(name: str, password: str) -> None:
    """A new password; the user's sessions end (whoever held the old one is out)."""
    check_password(password)
    with unit_of_work():
        db.session.execute(
            update(User)
            .where(User.id == _named(name).id)
            .values(password_hash=_hasher().hash(password), session_generation=User.session_generation + 1)
        )


def set_role(name: str, role: Role) -> None:
    with unit_of_work():
        db.session.execute(update(User).where(User.id == _named(name).id).values(role=role.label))


def end_sessions(user_id: int) -> None:
    """Every login cookie of this user stops acting (logout)."""
    with unit_of_work():
        db.session.execute(
            update(User).where(User.id == user_id).values(session_generation=User.session_generation + 1)
        )


def authenticate(name: str, password: str) -> Person | None:
    """The enabled user `name` whose password this is, else None (at the same cost either way)."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    user = db.session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    dummy = _dummy_hash()
    stored = user.password_hash if user is not None and user.password_hash else dummy
    try:
        _hasher().verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None or stored is dummy or user.disabled_at is not None:
        return None
    with unit_of_work():
        values: dict = {"last_login_at": utcnow()}
        if _hasher().check_needs_rehash(stored):
            values["password_hash"] = _hasher().hash(password)
        db.session.execute(update(User).where(User.id == user.id).values(**values))
    return _person(user)


def live_person(user_id: int) -> Person | None:
    """The enabled user with this id (a session's or a token's owner), else None."""
    user = db.session.get(User, user_id, populate_existing=True)
    if user is None or user.disabled_at is not None:
        return None
    return _person(user)


class SignInRefused(Exception):
    """An identity provider's user may not sign in here (disabled, or the name is a local user's)."""


def oidc_sign_in(subject: str, name: str, role: Role) -> Person:
    """The user this provider's subject is, made on first sign-in; the role follows the claim each time."""
    if len(subject) > column_length(User.oidc_subject):  # OpenID Connect says at most 255 ASCII characters
        raise SignInRefused("the provider's subject identifier is longer than OpenID Connect allows")
    with unit_of_work():
        user = db.session.execute(select(User).where(User.oidc_subject == subject)).scalar_one_or_none()
        if user is None:
            check_name(name)
            if db.session.execute(select(User.id).where(User.name == name)).first():
                raise SignInRefused(f"the name {name!r} belongs to another account here")
            user = User(name=name, role=role.label, oidc_subject=subject, created_at=utcnow())
            db.session.add(user)
        if user.disabled_at is not None:
            raise SignInRefused(f"the account {user.name!r} is disabled")
        user.role = role.label
        user.last_login_at = utcnow()
        db.session.flush()
        return _person(user)


def user_json(user: User) -> dict:
    return {
        "name": user.name,
        "role": user.role,
        "sign_in": "oidc" if user.oidc_subject else "password",
        "disabled": user.disabled_at is not None,
        "created_at": isoformat(user.created_at),
        "last_login_at": isoformat(user.last_login_at),
    }
