"""Queues as the operator sees and steers them: their limits, pause and numbers, one
transaction per command, shared by the API, the dashboard and `jobwarden queues`.

A queue exists once named, by a job or by a setting: a queue that only jobs name has no
row and no limit. Setting a limit or pausing writes its row (an upsert) and a
`queue_events` row naming the actor and reason; the next claim reads the row inside its
own statement (webapp.store.flow), so a change holds from the next claim on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import func, insert, select, update

from ..domain.limits import COUNT_CAP
from ..domain.queues import (
    MAX_CONCURRENCY,
    MAX_RATE_LIMIT,
    MAX_RATE_PERIOD_S,
    MIN_RATE_PERIOD_S,
)
from ..domain.statuses import FINISHED, LIVE
from ..domain.timeutil import utcnow
from ..store import flow
from ..store.dialects import dialect_insert
from ..store.extensions import db
from ..store.models import Job, Queue, QueueEvent
from ..store.transaction import unit_of_work
from ..store.wakeup import announce_claimable
from .queries import distinct_values
from .query_params import BadQuery
from .series import queued_per_queue

LIMIT_NAMES = ("concurrency", "key_concurrency", "rate_limit")
THROUGHPUT_WINDOW = timedelta(hours=1)


class UnknownQueue(BadQuery):
    """No job and no setting names this queue."""

    def __init__(self, name: str):
        super().__init__("name", f"no queue named {name!r}: name it by a job or set a limit on it first")


@dataclass(frozen=True)
class RateLimit:
    limit: int
    period_s: float


def check_limits(changes: dict[str, Any]) -> dict[str, Any]:
    """The columns a PATCH sets, checked; a bad value is a BadQuery naming its field.

    `changes` holds only the fields sent: `concurrency`, `key_concurrency` (int or None)
    and `rate_limit` ({"limit", "period_s"} or None); None clears a limit.
    """
    unknown = sorted(set(changes) - set(LIMIT_NAMES))
    if unknown:
        raise BadQuery(unknown[0], f"not a queue setting: one of {', '.join(LIMIT_NAMES)}")
    columns: dict[str, Any] = {}
    for name, low in (("concurrency", 0), ("key_concurrency", 1)):
        if name in changes:
            columns[name] = _whole(name, changes[name], low, MAX_CONCURRENCY)
    if "rate_limit" in changes:
        rate = changes["rate_limit"]
        if rate is None:
            columns.update(rate_limit_count=None, rate_limit_period_s=None)
        elif not isinstance(rate, dict) or set(rate) != {"limit", "period_s"}:
            raise BadQuery("rate_limit", 'an object {"limit": N, "period_s": S}, or null to clear it')
        else:
            columns["rate_limit_count"] = _whole("rate_limit.limit", rate["limit"], 1, MAX_RATE_LIMIT)
            columns["rate_limit_period_s"] = _seconds("rate_limit.period_s", rate["period_s"])
    return columns


def _whole(field: str, value: Any, low: int, high: int) -> int | None:
    if value is None and field in ("concurrency", "key_concurrency"):
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadQuery(field, f"a whole number from {low} to {high:,}")
    return value


def _seconds(field: str, value: Any) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not MIN_RATE_PERIOD_S <= value <= MAX_RATE_PERIOD_S
    ):
        raise BadQuery(field, f"seconds from {MIN_RATE_PERIOD_S} to {MAX_RATE_PERIOD_S:,.0f}")
    return float(value)


def set_limits(name: str, changes: dict[str, Any], *, actor: str, reason: str | None = None) -> Queue:
    """Set (or clear, with None) the queue's limits; creates the queue when new."""
    columns = check_limits(changes)
    with unit_of_work():
        now = utcnow()
        _ensure_row(name, now)
        if columns:
            db.session.execute(
                update(Queue)
                .where(Queue.name == name)
                .values(**columns, updated_at=now, claim_turn=Queue.claim_turn + 1)
            )
        _record(name, "set", actor=actor, reason=reason, data=changes, now=now)
        announce_claimable()  # a raised or cleared limit may free jobs: waiting claims look again
        row = _row(name)
    flow.limits_changed()
    return row


def pause(name: str, *, actor: str, reason: str | None = None) -> Queue:
    return _set_paused(name, True, actor=actor, reason=reason)


def resume(name: str, *, actor: str, reason: str | None = None) -> Queue:
    return _set_paused(name, False, actor=actor, reason=reason)


def _set_paused(name: str, paused: bool, *, actor: str, reason: str | None) -> Queue:
    with unit_of_work():
        if not is_known(name):
            raise UnknownQueue(name)
        now = utcnow()
        _ensure_row(name, now)
        db.session.execute(
            update(Queue)
            .where(Queue.name == name)
            .values(paused=paused, updated_at=now, claim_turn=Queue.claim_turn + 1)
        )
        _record(name, "pause" if paused else "resume", actor=actor, reason=reason, data=None, now=now)
        if not paused:
            announce_claimable()
        row = _row(name)
    flow.limits_changed()
    return row


def is_known(name: str) -> bool:
    named_by_row = select(Queue.name).where(Queue.name == name).exists()
    named_by_job = select(Job.id).where(Job.queue == name).exists()
    return bool(db.session.execute(select(named_by_row | named_by_job)).scalar())


def _ensure_row(name: str, now: datetime) -> None:
    """The queue's row, inserted unless there (ON CONFLICT DO NOTHING: two first settings at once
    both succeed)."""
    db.session.execute(
        dialect_insert(Queue)
        .values(name=name, paused=False, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )


def _record(name: str, action: str, *, actor: str, reason: str | None, data: Any, now: datetime) -> None:
    db.session.execute(
        insert(QueueEvent).values(queue=name, at=now, actor=actor, action=action, reason=reason, data=data)
    )


def _row(name: str) -> Queue:
    return db.session.execute(select(Queue).where(Queue.name == name)).scalar_one()


def events_of(name: str, limit: int = 50) -> list[QueueEvent]:
    return list(
        db.session.scalars(
            select(QueueEvent).where(QueueEvent.queue == name).order_by(QueueEvent.id.desc()).limit(limit)
        )
    )


@dataclass(frozen=True)
class QueueView:
    """One queue as the API and the dashboard show it."""

    name: str
    paused: bool
    concurrency: int | None
    key_concurrency: int | None
    rate_limit: RateLimit | None
    queued: int  # counted up to COUNT_CAP + 1: more than `queued_cap` reads as cap + 1
    running: int  # claimed + running: what `concurrency` counts
    oldest_queued_s: float | None
    finished_last_hour: int
    queued_cap: ClassVar[int] = COUNT_CAP

    def json(self) -> dict[str, Any]:
        rate = self.rate_limit
        return {
            "name": self.name,
            "paused": self.paused,
            "concurrency": self.concurrency,
            "key_concurrency": self.key_concurrency,
            "rate_limit": None if rate is None else {"limit": rate.limit, "period_s": rate.period_s},
            "queued": self.queued,
            "queued_cap": self.queued_cap,
            "running": self.running,
            "oldest_queued_s": self.oldest_queued_s,
            "finished_last_hour": self.finished_last_hour,
        }


def list_queues(now: datetime | None = None) -> list[QueueView]:
    """Every queue named by a row or by a job, in name order: a few reads, whatever the backlog
    (the queued jobs per queue as `series.queued_per_queue` reads them, counted up to COUNT_CAP)."""
    now = now or utcnow()
    names = set(db.session.scalars(select(Queue.name))) | set(distinct_values(Job.queue))
    settings = {row.name: row for row in db.session.scalars(select(Queue))}
    waiting = queued_per_queue(names, now, cap=QueueView.queued_cap)
    live = dict(
        db.session.execute(
            select(Job.queue, func.count()).where(Job.status.in_(sorted(LIVE))).group_by(Job.queue)
        ).all()
    )
    # The jobs finished within the window first (MATERIALIZED), then grouped: grouped at once,
    # SQLite read every finished job of each queue in queue order to skip the grouping's sort.
    finished_recently = (
        select(Job.queue)
        .where(Job.status.in_(sorted(FINISHED)), Job.finished_at >= now - THROUGHPUT_WINDOW)
        .cte("finished_recently")
        .prefix_with("MATERIALIZED")
    )
    per_queue = select(finished_recently.c.queue, func.count()).group_by(finished_recently.c.queue)
    finished: dict[str, int] = {queue: n for queue, n in db.session.execute(per_queue)}
    views = []
    for name in sorted(names):
        row = settings.get(name)
        queued, oldest = waiting.get(name, (0, None))
        rate = None
        if row is not None and row.rate_limit_count is not None and row.rate_limit_period_s is not None:
            rate = RateLimit(row.rate_limit_count, row.rate_limit_period_s)
        views.append(
            QueueView(
                name=name,
                paused=bool(row and row.paused),
                concurrency=row.concurrency if row else None,
                key_concurrency=row.key_concurrency if row else None,
                rate_limit=rate,
                queued=queued,
                running=live.get(name, 0),
                oldest_queued_s=None if oldest is None else round(oldest, 3),
                finished_last_hour=finished.get(name, 0),
            )
        )
    return views


def get_queue(name: str) -> QueueView:
    for view in list_queues():
        if view.name == name:
            return view
    raise UnknownQueue(name)
