"""The identity API's request and answer models: tokens, users and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from ...domain.roles import ROLE_NAMES
from ...jobs.query_params import MAX_ID
from .schemas import Body, Name, UtcTime, no_nul

RoleName = Literal[ROLE_NAMES]  # type: ignore[valid-type]
Filter = Annotated[str, AfterValidator(no_nul)]  # compared in the database: PostgreSQL text holds no NUL


class CreateToken(Body):
    name: Name = Field(description="What the token is for (`ci`, `backfill`).")
    role: RoleName = Field(description="At most the owner's role.")
    user: Name | None = Field(None, description="Admins only: the owner, if not the caller.")


class Token(BaseModel):
    id: int
    name: str
    user: str
    role: str
    created_at: str
    last_used_at: str | None
    revoked: bool
    revoked_at: str | None


class CreatedToken(Token):
    token: str = Field(description="The `jw_…` secret; shown only here. Send it as Authorization: Bearer.")


class TokenList(BaseModel):
    tokens: list[Token]


class User(BaseModel):
    name: str
    role: str
    sign_in: Literal["password", "oidc"]
    disabled: bool
    created_at: str
    last_login_at: str | None


class UserList(BaseModel):
    users: list[User]


class AuditQuery(BaseModel):
    actor: Filter | None = Field(None, max_length=200, description="Exactly this actor.")
    action: Filter | None = Field(None, max_length=200, description="Actions containing this.")
    target: Filter | None = Field(None, max_length=400, description="Targets containing this.")
    outcome: Filter | None = Field(None, max_length=200, description="`ok`, or a part of a refusal (`403`).")
    since: UtcTime | None = None
    until: UtcTime | None = None
    before: int | None = Field(None, ge=1, le=MAX_ID, description="The next page: `next_before` of the previous one.")
    limit: int = Field(100, ge=1, le=500)


class AuditEntry(BaseModel):
    id: int
    at: str
    actor: str
    via: str
    action: str
    target: str | None
    reason: str | None
    address: str | None
    outcome: str
    data: Any = None


class AuditList(BaseModel):
    entries: list[AuditEntry]
    next_before: int | None
