"""Which database the session writes to, asked in one place.

The state machine's statements are written once for both databases; a few differ where the two
differ (LISTEN/NOTIFY, autocommit, LATERAL, ON CONFLICT's own INSERT). Each such place asks
`on_postgresql()` (else SQLite) or takes `dialect_insert` for an upsert."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db


def on_postgresql() -> bool:
    """Whether the session's database is PostgreSQL (else SQLite)."""
    return db.session.get_bind().dialect.name == "postgresql"


def dialect_insert(table: Any) -> Any:
    """The INSERT of the session's database for `table`, which knows ON CONFLICT."""
    return postgresql.insert(table) if on_postgresql() else sqlite.insert(table)
