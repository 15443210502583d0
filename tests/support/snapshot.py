"""The whole store as plain rows, read on a connection of its own, to prove a
refused request changed nothing."""

from __future__ import annotations

from sqlalchemy import select

from webapp.store.extensions import db
from webapp.store.models import Job, JobAttempt, JobEvent, Worker


def store_snapshot() -> dict[str, list[tuple]]:
    with db.engine.connect() as connection:
        return {
            model.__tablename__: [
                tuple(row)
                for row in connection.execute(select(model.__table__).order_by(*model.__table__.primary_key.columns))
            ]
            for model in (Job, JobAttempt, JobEvent, Worker)
        }
