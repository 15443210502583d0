"""Is the database's schema Jobwarden's current one? Answered cheaply for /healthz:
one catalogue query for the tables, one for the Alembic revision."""

from __future__ import annotations

from functools import cache

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from .extensions import db


@cache
def migration_heads(directory: str) -> frozenset[str]:
    """The newest revisions of the migrations shipped with this code (read once per process)."""
    return frozenset(ScriptDirectory(directory).get_heads())


def schema_problem(connection: Connection, migrations_directory: str) -> str | None:
    """What is missing from the schema, in one sentence naming it, or None when it is complete.

    A database built by `db upgrade` must be at the newest revision; one built without
    Alembic (`create_all`) has no revision table and is judged by its tables alone."""
    present = set(inspect(connection).get_table_names())
    missing = sorted(table.name for table in db.metadata.sorted_tables if table.name not in present)
    if missing:
        return f"the database lacks the tables {', '.join(missing)}: run `jobwarden db upgrade`"
    if "alembic_version" not in present:
        return None
    revisions = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    heads = migration_heads(migrations_directory)
    if revisions != heads:
        return (
            f"the schema is at revision {', '.join(sorted(revisions)) or 'none'}, this code needs "
            f"{', '.join(sorted(heads))}: run `jobwarden db upgrade`"
        )
    return None
