"""Unique jobs: a create whose `type` and `unique_key` match a live job makes nothing and
answers with that job.

Held by the store, not by a read before the insert: the partial unique index
`uq_jobs_live_unique_key` on (type, unique_key) over unfinished jobs refuses a second
live copy, and the create is one INSERT … ON CONFLICT DO NOTHING against it, so of any
number of concurrent creates exactly one inserts. Only a refused create reads, to find
the job that holds the key.

`unique_for_s` also matches a job of the key that finished within that many seconds:
the INSERT's own SELECT carries `WHERE NOT EXISTS (such a job)`, so that check is in the
inserting statement too. (A job that finishes while a create runs is either still live
for the index or already finished for the NOT EXISTS: either way it is matched.)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, literal, select, text, true
from sqlalchemy.dialects import postgresql, sqlite

from ..domain.statuses import UNFINISHED
from .extensions import db
from .models import LIVE_UNIQUE_WHERE, Job

_JOBS = Job.__table__
ATTEMPTS = 5  # a holder that finishes between the refused insert and its read: insert again


def insert_unique(row: dict[str, Any], unique_for_s: float | None, now: datetime) -> tuple[Job, bool]:
    """Insert `row` (a full jobs row with a `unique_key`) unless the key is held; (job, duplicate)."""
    for _ in range(ATTEMPTS):
        inserted = _insert(row, unique_for_s, now)
        if inserted is not None:
            return inserted, False
        holder = _holder(row["type"], row["unique_key"], unique_for_s, now)
        if holder is not None:
            return holder, True
    raise RuntimeError(f"unique key {row['unique_key']!r} of {row['type']!r}: no insert and no holder")


def _recently_finished(job_type: Any, unique_key: Any, cutoff: datetime) -> Any:
    return (
        select(_JOBS.c.id)
        .where(
            _JOBS.c.type == job_type,
            _JOBS.c.unique_key == unique_key,
            _JOBS.c.status.not_in(sorted(UNFINISHED)),
            _JOBS.c.finished_at >= cutoff,
        )
        .order_by(_JOBS.c.finished_at.desc())
        .limit(1)
    )


def _insert(row: dict[str, Any], unique_for_s: float | None, now: datetime) -> Job | None:
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    names = list(row)
    values = select(*(literal(row[name], _JOBS.c[name].type).label(name) for name in names))
    if unique_for_s:
        cutoff = now - timedelta(seconds=unique_for_s)
        values = values.where(~exists(_recently_finished(row["type"], row["unique_key"], cutoff)))
    else:
        values = values.where(true())  # SQLite: INSERT … SELECT … ON CONFLICT needs a WHERE to parse
    statement = (
        insert(_JOBS)
        .from_select(names, values)
        .on_conflict_do_nothing(index_elements=["type", "unique_key"], index_where=text(LIVE_UNIQUE_WHERE))
        .returning(*_JOBS.c)
    )
    return db.session.scalars(select(Job).from_statement(statement)).one_or_none()


def _holder(job_type: str, unique_key: str, unique_for_s: float | None, now: datetime) -> Job | None:
    live = db.session.scalars(
        select(Job).where(Job.type == job_type, Job.unique_key == unique_key, Job.status.in_(sorted(UNFINISHED)))
    ).one_or_none()
    if live is not None or not unique_for_s:
        return live
    recent = _recently_finished(job_type, unique_key, now - timedelta(seconds=unique_for_s))
    return db.session.scalars(select(Job).where(Job.id.in_(recent.scalar_subquery()))).one_or_none()
