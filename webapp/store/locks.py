"""Once across replicas: a PostgreSQL advisory lock held for one round of work.

The monitor's pass and the webhook delivery round each take their own key, so one
replica does each round while the others skip it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from .extensions import db


@contextmanager
def one_at_a_time(key: int) -> Iterator[bool]:
    """Yield whether this process holds the lock `key` (always True on SQLite).

    On PostgreSQL the lock lives in the open transaction of a connection of its own
    (pg_try_advisory_xact_lock), so it goes when the round ends or its process dies.
    SQLite has no such lock; the conditional changes alone keep a second round harmless.
    """
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    with db.engine.connect() as connection, connection.begin():
        yield bool(connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar())
