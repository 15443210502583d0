"""`/api/tokens`, `/api/users` and `/api/audit`: a person's API tokens, the users, and the
audit trail. What each route needs is in webapp.server.access; a token is created for the
caller (an admin may name another user) and shown once."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint

from ...domain.roles import Role
from ...jobs import audit, tokens, users
from ...jobs.query_params import BadQuery
from ...store.extensions import db
from ...store.models import User
from .. import auth
from ..audit_trail import note
from . import identity_schemas as s
from .public import OPERATOR
from .spec import ApiError, operation

bp = Blueprint("identity_api", __name__, url_prefix="/api")
ERRORS = (401, 403)


@bp.errorhandler(BadQuery)
def bad_input(error: BadQuery):
    status = 404 if isinstance(error, (tokens.TokenNotFound, users.UserNotFound)) else 400
    return ApiError(status, "not_found" if status == 404 else "invalid", f"{error.field}: {error}", field=error.field)


def _owner(body: s.CreateToken) -> users.Person:
    """The token's owner: the caller, or (for an admin) the user named."""
    principal = auth.current_principal()
    if body.user is not None and body.user != principal.name:
        if not principal.may(Role.ADMIN):
            raise ApiError(403, "forbidden", "user: only an admin creates tokens for others", field="user")
        person = users.live_person(_user_id(body.user))
        if person is None:
            raise ApiError(409, "conflict", f"user: {body.user} is disabled", field="user")
        return person
    person = users.live_person(principal.user_id) if principal.user_id is not None else None
    if person is None:
        raise ApiError(
            409,
            "conflict",
            "tokens belong to users: sign in as one (`jobwarden users add NAME --role R`), or name `user`",
            field="user",
        )
    if principal.via.startswith("token:"):
        raise ApiError(403, "forbidden", "a token cannot create tokens; sign in with a password", field="user")
    return person


def _user_id(name: str) -> int:
    user_id = db.session.query(User.id).filter(User.name == name).scalar()
    if user_id is None:
        raise users.UserNotFound(name)
    return int(user_id)


@operation(
    bp,
    "POST",
    "/tokens",
    summary="Create an API token (shown once)",
    body=s.CreateToken,
    responses={201: ("Created; the token is shown only now", s.CreatedToken)},
    errors=(*ERRORS, 404, 409),
    security=OPERATOR,
)
def create_token(body: s.CreateToken):
    """The role is at most the owner's; the token acts with the lower of its role and its owner's current one."""
    owner = _owner(body)
    created = tokens.create(owner, body.name, Role.named(body.role))
    note(target=f"token {created.token.id} ({owner.name}/{body.name}, {body.role})")
    return {**tokens.token_json(created.token, owner.name), "token": created.secret}, 201


@operation(
    bp,
    "GET",
    "/tokens",
    summary="The caller's tokens (an admin's: everybody's)",
    responses={200: s.TokenList},
    errors=ERRORS,
)
def list_tokens():
    principal = auth.current_principal()
    owner = None if principal.may(Role.ADMIN) else principal.user_id or -1
    return {"tokens": [tokens.token_json(token, name) for token, name in tokens.tokens_of(owner)]}


@operation(
    bp,
    "DELETE",
    "/tokens/<job_id:token_id>",
    summary="Revoke a token",
    responses={200: s.Token},
    errors=(*ERRORS, 404),
    security=OPERATOR,
)
def revoke_token(token_id: int):
    """It stops acting at once. Operators revoke their own tokens, admins anybody's."""
    principal = auth.current_principal()
    owner = None if principal.may(Role.ADMIN) else principal.user_id or -1
    token = tokens.revoke(token_id, owner_id=owner)
    note(target=f"token {token.id} ({token.name})")
    return tokens.token_json(token, db.session.get(User, token.user_id).name)  # type: ignore[union-attr]


@operation(bp, "GET", "/users", summary="The users", responses={200: s.UserList}, errors=ERRORS)
def list_users():
    return {"users": [users.user_json(user) for user in users.all_users()]}


@operation(
    bp,
    "GET",
    "/audit",
    summary="The audit trail, newest first",
    query=s.AuditQuery,
    responses={200: s.AuditList},
    errors=ERRORS,
)
def list_audit(query: s.AuditQuery):
    """Every change made by a person or token, and every one refused to them."""
    wanted = audit.AuditFilter(
        actor=query.actor,
        action=query.action,
        target=query.target,
        outcome=query.outcome,
        since=_utc(query.since),
        until=_utc(query.until),
        before_id=query.before,
    )
    rows = audit.entries(wanted, limit=query.limit)
    next_before = rows[-1].id if len(rows) == query.limit else None
    return {"entries": [audit.entry_json(row) for row in rows], "next_before": next_before}


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is UTC (`UtcTime` refused one that has no UTC instant)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
