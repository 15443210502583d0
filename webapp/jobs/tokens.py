"""API tokens: `jw_` plus 32 random bytes, shown once; only their SHA-256 is kept.

A token is random and long, so a fast hash is as safe as a slow one and costs nothing
per request; it is found by its hash (unique index) and compared again in constant time.
A token acts with its own role, never above its owner's current role, and stops with
its owner (disabled) or when revoked. Its last use is recorded at most once a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from ..domain.roles import Role
from ..domain.timeutil import isoformat, utcnow
from ..store.extensions import db
from ..store.models import ApiToken, User
from ..store.transaction import unit_of_work
from .query_params import BadQuery
from .users import Person, check_name

PREFIX = "jw_"
SECRET_BYTES = 32
LAST_USE_RESOLUTION = timedelta(minutes=1)


class TokenNotFound(BadQuery):
    def __init__(self, token_id: int):
        super().__init__("id", f"no token {token_id}")


@dataclass(frozen=True)
class Created:
    token: ApiToken
    secret: str  # shown once


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def looks_like_token(value: str) -> bool:
    return value.startswith(PREFIX)


def create(owner: Person, name: str, role: Role) -> Created:
    """A token of `owner` with `role` (at most the owner's): BadQuery naming `role` otherwise."""
    check_name(name)
    if role > owner.role:
        raise BadQuery("role", f"at most your own role ({owner.role.label})")
    secret = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    with unit_of_work():
        token = ApiToken(user_id=owner.id, name=name, role=role.label, secret_hash=_digest(secret), created_at=utcnow())
        db.session.add(token)
        db.session.flush()
    return Created(token=token, secret=secret)


@dataclass(frozen=True)
class TokenHolder:
    """Who a presented token acts as: its owner's name, the lower of the two roles, and the token."""

    person: Person
    token_id: int
    token_name: str


def authenticate(secret: str) -> TokenHolder | None:
    """The live token with this secret, else None; records its use."""
    digest = _digest(secret)
    row = db.session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.secret_hash == digest, ApiToken.revoked_at.is_(None), User.disabled_at.is_(None))
    ).first()
    if row is None or not hmac.compare_digest(row.ApiToken.secret_hash, digest):
        return None
    token, user = row.ApiToken, row.User
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USE_RESOLUTION:
        with unit_of_work():
            db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    role = min(Role.named(token.role), Role.named(user.role))
    person = Person(id=user.id, name=user.name, role=role, session_generation=user.session_generation)
    return TokenHolder(person=person, token_id=token.id, token_name=token.name)


def tokens_of(user_id: int | None) -> list[tuple[ApiToken, str]]:
    """(token, owner's name), newest first: one user's, or everybody's with None."""
    query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return [(row[0], row[1]) for row in db.session.execute(query)]


def revoke(token_id: int, *, owner_id: int | None) -> ApiToken:
    """Revoke a token (of `owner_id` only, unless None: an admin's); it stops acting at once."""
    with unit_of_work():
        token = db.session.get(ApiToken, token_id)
        if token is None or (owner_id is not None and token.user_id != owner_id):
            raise TokenNotFound(token_id)
        token.revoked_at = token.revoked_at or utcnow()
        db.session.flush()
        return token


def token_json(token: ApiToken, owner: str) -> dict:
    return {
        "id": token.id,
        "name": token.name,
        "user": owner,
        "role": token.role,
        "created_at": isoformat(token.created_at),
        "last_used_at": isoformat(token.last_used_at),
        "revoked": token.revoked_at is not None,
        "revoked_at": isoformat(token.revoked_at),
    }
