"""Flow control in the claim: a queue's pause, `concurrency`, `key_concurrency` and
`rate_limit`, held by the statement that claims (`transitions.claim`), never by a read
followed by a write.

A claim has two parts. The fast part takes jobs of queues with no limit and no pause;
its only extra cost is `queue NOT IN (restricted queues)`, a lookup in a table of a few
rows. The limited part runs only when the fast part left room in the batch and a
restricted queue has a due job: it claims one job per statement, and that statement
counts, in its own WHERE, the queue's live jobs, the key's live jobs and the queue's
starts in the window (now - period, now], so the job is claimed only if every count is
under its limit at the moment of the write.

Concurrent claimers must not both count the same state. SQLite has one writer: the
claim's UPDATE holds the write lock while it counts. On PostgreSQL the limited queues'
rows are locked first (`lock_limited_queues`, SELECT … FOR UPDATE, in name order so
claimers never deadlock) and held to the commit, so claimers of one limited queue take
turns. That lock is a statement of its own, before the claim: under READ COMMITTED a
statement sees the data as of its own start, so a count in the same statement as the
lock would be taken before the lock was granted and miss the claims of the claimer it
waited for; the claim statement after it starts later and counts them.

A rate-limited queue's starts are rows of `queue_starts` (whole microseconds since the
epoch), written by the claim that takes the job and pruned past the queue's period by
the same transaction: a sliding window, so no window of `period_s` ever holds more than
`limit` starts (a token bucket would let 2 × limit through across a boundary).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, insert, or_, select
from sqlalchemy.sql.expression import FromClause, UpdateBase
from sqlalchemy.types import BigInteger

from ..domain.statuses import LIVE, Status
from .extensions import db
from .models import Job, Queue, QueueStart
from .sql_time import EPOCH, MICROSECOND

_JOBS = Job.__table__
_QUEUES = Queue.__table__
_STARTS = QueueStart.__table__
_LIVE = sorted(LIVE)


PRUNE_MARGIN_S = 60.0


def epoch_microseconds(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def restricted(queues: FromClause = _QUEUES) -> ColumnElement[bool]:
    """A queue whose claims go through the limited part: paused or holding any limit."""
    return or_(
        queues.c.paused,
        queues.c.concurrency.is_not(None),
        queues.c.key_concurrency.is_not(None),
        queues.c.rate_limit_count.is_not(None),
    )


def unrestricted_job() -> ColumnElement[bool]:
    """The fast part's condition: the job's queue has no limit and no pause (or no row at all)."""
    return _JOBS.c.queue.not_in(select(_QUEUES.c.name).where(restricted()).scalar_subquery())


def within_limits(queue: FromClause) -> list[ColumnElement[bool]]:
    """The limited part's conditions on a queued job of `queue` (a row of `queues` joined on it)."""
    live = _JOBS.alias("live")
    live_in_queue = (
        select(func.count()).select_from(live).where(live.c.status.in_(_LIVE), live.c.queue == _JOBS.c.queue)
    )
    live_with_key = live_in_queue.where(live.c.concurrency_key == _JOBS.c.concurrency_key)
    starts = (
        select(func.count())
        .select_from(_STARTS)
        .where(
            _STARTS.c.queue == _JOBS.c.queue,
            _STARTS.c.at_us > bindparam("cas_now_us", type_=BigInteger) - window_us(queue),
        )
    )
    return [
        queue.c.paused.is_(False),
        or_(queue.c.concurrency.is_(None), live_in_queue.scalar_subquery() < queue.c.concurrency),
        or_(
            queue.c.key_concurrency.is_(None),
            _JOBS.c.concurrency_key.is_(None),
            live_with_key.scalar_subquery() < queue.c.key_concurrency,
        ),
        or_(queue.c.rate_limit_count.is_(None), starts.scalar_subquery() < queue.c.rate_limit_count),
    ]


def window_us(queue: FromClause) -> ColumnElement[int]:
    """A rate-limited queue's period in whole microseconds."""
    return func.cast(func.round(queue.c.rate_limit_period_s * 1_000_000), BigInteger)


def limited_candidate(now: ColumnElement[datetime], by_type: bool, by_queue: bool) -> Select:
    """The one job the limited part claims: the first due job, in claim order, of a restricted
    queue whose every limit has room for it."""
    candidate = (
        select(_JOBS.c.id)
        .join(_QUEUES, _QUEUES.c.name == _JOBS.c.queue)
        .where(_JOBS.c.status == Status.QUEUED, _JOBS.c.run_after <= now, restricted(), *within_limits(_QUEUES))
        .order_by(_JOBS.c.priority.desc(), _JOBS.c.id)
        .limit(1)
    )
    if by_type:
        candidate = candidate.where(_JOBS.c.type.in_(bindparam("cas_types", expanding=True)))
    if by_queue:
        candidate = candidate.where(_JOBS.c.queue.in_(bindparam("cas_queues", expanding=True)))
    return candidate


def record_starts(rows: FromClause) -> UpdateBase:
    """A follow-up of the limited claim: one `queue_starts` row per claimed job of a rate-limited queue."""
    return insert(_STARTS).from_select(
        ["queue", "at_us"],
        select(rows.c.queue, bindparam("cas_now_us", type_=BigInteger)).where(
            rows.c.queue.in_(select(_QUEUES.c.name).where(_QUEUES.c.rate_limit_count.is_not(None)))
        ),
    )


def lock_limited_queues(now: datetime, types: list[str] | None, queues: list[str] | None) -> list[str]:
    """The restricted, unpaused queues with a due job this claimer may take, in name order;
    on PostgreSQL their rows stay locked (FOR UPDATE) until the claim's transaction ends."""
    due = select(_JOBS.c.id).where(
        _JOBS.c.queue == _QUEUES.c.name, _JOBS.c.status == Status.QUEUED, _JOBS.c.run_after <= now
    )
    if types:
        due = due.where(_JOBS.c.type.in_(types))
    statement = (
        select(_QUEUES.c.name).where(restricted(), _QUEUES.c.paused.is_(False), due.exists()).order_by(_QUEUES.c.name)
    )
    if queues:
        statement = statement.where(_QUEUES.c.name.in_(queues))
    if db.session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return list(db.session.scalars(statement))


def prune_starts(queues: list[str], now: datetime) -> None:
    """Drop the starts of `queues` that no window ending now or later can count, with a margin
    (PRUNE_MARGIN_S) for a claimer whose clock reads a little behind this one's."""
    now_us = epoch_microseconds(now - timedelta(seconds=PRUNE_MARGIN_S))
    period = select(window_us(_QUEUES)).where(_QUEUES.c.name == _STARTS.c.queue).scalar_subquery()
    db.session.execute(
        delete(_STARTS).where(
            _STARTS.c.queue.in_(queues),
            or_(period.is_(None), _STARTS.c.at_us <= now_us - period),
        )
    )


# --- waking claims that wait on a limit ------------------------------------------------------
# A slot frees when a live job finishes and a rate window opens when a start leaves it;
# neither makes a job newly queued, so the wake-up of waiting claims (webapp.store.wakeup)
# does not see them. A claim that waits while a limited queue holds due jobs it may take
# therefore looks again by FLOW_RECHECK_S at the latest, or when the earliest start leaves
# its window; and a finish wakes waiting claims while limits are in use.
FLOW_RECHECK_S = 0.25
LIMITS_IN_USE_TTL_S = 1.0
_limits_seen: tuple[float, bool] = (float("-inf"), False)


def held_back_until(now: datetime, types: list[str] | None, queues: list[str] | None) -> datetime | None:
    """When a waiting claim should look again for jobs its queues' limits hold back (None: none held)."""
    due = select(_JOBS.c.id).where(
        _JOBS.c.queue == _QUEUES.c.name, _JOBS.c.status == Status.QUEUED, _JOBS.c.run_after <= now
    )
    if types:
        due = due.where(_JOBS.c.type.in_(types))
    held = select(_QUEUES.c.name).where(restricted(), _QUEUES.c.paused.is_(False), due.exists())
    if queues:
        held = held.where(_QUEUES.c.name.in_(queues))
    held_names = list(db.session.scalars(held))
    if not held_names:
        return None
    now_us = epoch_microseconds(now)
    opening = db.session.execute(
        select(func.min(_STARTS.c.at_us + window_us(_QUEUES)))
        .select_from(_STARTS)
        .join(_QUEUES, _QUEUES.c.name == _STARTS.c.queue)
        .where(_STARTS.c.queue.in_(held_names), _STARTS.c.at_us > now_us - window_us(_QUEUES))
    ).scalar()
    recheck = now + timedelta(seconds=FLOW_RECHECK_S)
    if opening is None:
        return recheck
    return min(recheck, EPOCH + int(opening) * MICROSECOND)


def limits_in_use() -> bool:
    """Whether any queue is limited, read at most once a second per process: a hint for
    waking claims, never a claim's decision."""
    global _limits_seen
    checked_at, in_use = _limits_seen
    if time.monotonic() - checked_at > LIMITS_IN_USE_TTL_S:
        in_use = db.session.execute(select(select(_QUEUES.c.name).where(restricted()).exists())).scalar() or False
        _limits_seen = (time.monotonic(), in_use)
    return in_use
