"""Is the database's schema Jobwarden's current one? Answered cheaply for /healthz:
one catalogue query for the tables, one for the Alembic revision.

The newest revisions are read from the migration files themselves, without Alembic:
importing Alembic (with Mako and Pygments) costs a web process about 8 MiB that it
needs for nothing else; `jobwarden db` loads it (tests/test_startup_checks.py holds
both answers equal).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from ..assets import asset_dir
from .extensions import db


def migrations_directory() -> Path:
    """The Alembic migrations shipped with this code (for `jobwarden db`, and the heads below)."""
    return asset_dir("migrations")


def _revision_names(source: str) -> tuple[str, set[str]]:
    """A migration file's `revision` and the revisions its `down_revision` names."""
    values: dict[str, Any] = {}
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = ast.literal_eval(statement.value)
    down = values.get("down_revision")  # None, one revision, or a tuple of them (a merge)
    downs = {down} if isinstance(down, str) else set(down or ())
    return str(values["revision"]), downs


@cache
def migration_heads(directory: Path | None = None) -> frozenset[str]:
    """The newest revisions of the migrations shipped with this code: those no other one
    revises (read once per process)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted((directory or migrations_directory()).joinpath("versions").glob("*.py")):
        revision, downs = _revision_names(path.read_text(encoding="utf-8"))
        revisions.add(revision)
        revised |= downs
    return frozenset(revisions - revised)


def schema_problem(connection: Connection) -> str | None:
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
    heads = migration_heads()
    if revisions != heads:
        return (
            f"the schema is at revision {', '.join(sorted(revisions)) or 'none'}, this code needs "
            f"{', '.join(sorted(heads))}: run `jobwarden db upgrade`"
        )
    return None
