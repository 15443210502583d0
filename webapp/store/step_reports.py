"""A step report is recorded once, however often it is sent, at the same cost however
long the job's history.

A worker whose request timed out sends its step report again, though the server may
have recorded it. Within one attempt a step's name is unique and each event happens
once per step attempt, so the job, the attempt, the name, the event and the step
attempt name one report. The event row carries that identity as `report_key` under a
unique index (`uq_job_events_report`), and the event is inserted with ON CONFLICT DO
NOTHING: the index finds a report sent again inside the insert that would duplicate
it. (Before, every step event of the attempt was read and compared in Python: a
1,000-item batch took 2.8 s, and 39.8 s with 5,000 earlier events; issue 24, item 6.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite

from ..domain.event_kinds import EventKind
from .extensions import db
from .models import JobEvent

_EVENTS = JobEvent.__table__
_INSERT: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def report_key(name: str, event: str, step_attempt: int | None) -> str:
    """The report's identity within its attempt. The event and the step attempt never
    hold a "/", so the name after them needs no escaping."""
    return f"{event}/{'' if step_attempt is None else step_attempt}/{name}"


def record_once(
    job_id: int, *, key: str, actor: str, at: datetime, attempt: int, reason: str | None, data: Any
) -> bool:
    """Append the step event unless the attempt has the report already; True if appended."""
    insert = _INSERT[db.session.get_bind().dialect.name]
    statement = (
        insert(_EVENTS)
        .values(
            job_id=job_id,
            kind=EventKind.STEP,
            actor=actor,
            at=at,
            attempt=attempt,
            reason=reason,
            data=data,
            report_key=key,
        )
        .on_conflict_do_nothing(
            index_elements=[_EVENTS.c.job_id, _EVENTS.c.attempt, _EVENTS.c.report_key],
            index_where=_EVENTS.c.report_key.is_not(None),
        )
        .returning(_EVENTS.c.id)
    )
    return db.session.execute(statement).first() is not None
