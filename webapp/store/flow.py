"""Flow control in the claim: a queue's pause, `concurrency`, `key_concurrency` and
`rate_limit`, held by the statement that claims (`transitions.claim`), never by a read
followed by a write.

A claim has two parts. The fast part takes jobs of queues with no limit and no pause;
its only extra cost is `queue NOT IN (restricted queues)`, a lookup in a table of a few
rows. The limited part runs when a restricted queue has a due job (on PostgreSQL first
while limits are in use, else once the fast part left room in the batch): one statement
counts, once, each held queue's live jobs and its starts in the window (now - period, now]
and each key's live jobs, and claims in claim order as many jobs as that room allows
(`limited_candidates`), so no limit is passed at the moment of the write. Counting per statement, not per candidate row, keeps a
claim's cost to the rows it looks at, not the queue's depth.

Concurrent claimers must not both count the same state. SQLite has one writer: the
claim's UPDATE holds the write lock while it counts. On PostgreSQL a limited queue has
LANES lanes (transaction-level advisory locks, `lane_lock`): a keyed job's lane is a hash of
its key, an unkeyed job's its id. A claimer holding lanes claims only jobs of those lanes,
so claimers of one key take turns on its lane and each counts the key's live jobs with all
earlier claims of it committed, while claimers holding other lanes run beside it. A queue's
`concurrency` is shared by every lane: a claimer leaves room (`lane_reserve`) for what the
claimers holding the other lanes may be taking at that moment (at most LANE_BATCH_MAX
each: a transaction makes one limited claim, `jobs.claim_jobs`), so the sum never passes
the limit. A claimer takes the free lanes of the first due
jobs in claim order with `pg_try_advisory_xact_lock` (`hold_lanes`): it waits only when
every lane it would use is taken, and then on one lane. A claim that cannot leave that
room (a rate limit, a concurrency near full, several held queues) takes every lane of its
queues in order (`lock_whole_queues`) and is alone on them, as all claimers were before.
A lock is its own statement, before the claim: under READ COMMITTED a statement sees the
data as of its own start, so a count in the same statement as the lock would be taken
before the lock was granted and miss the claims of the claimer it waited for; the claim
statement after it starts later and counts them.

A rate-limited queue's starts are rows of `queue_starts` (whole microseconds since the
epoch), written by the claim that takes the job and pruned past the queue's period by
the same transaction: a sliding window, so no window of `period_s` ever holds more than
`limit` starts (a token bucket would let 2 × limit through across a boundary).
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.expression import FromClause, Subquery, UpdateBase
from sqlalchemy.types import BigInteger, Integer, String

from ..domain.statuses import LIVE, Status
from .extensions import db
from .models import Job, Queue, QueueStart
from .sql_time import EPOCH, MICROSECOND
from .wakeup import CHANNEL

_JOBS = Job.__table__
_QUEUES = Queue.__table__
_STARTS = QueueStart.__table__
_LIVE = sorted(LIVE)


def _live_in_queue() -> ColumnElement[int]:
    """The live jobs of the queue `queues` names: one count per live status, each an equality
    on the status that an index of (queue, status) or (status) reads as a range of live
    entries only. As one `status IN (…)`, a planner without statistics of the jobs read that
    condition as a filter over every entry of the queue, its queued jobs too."""
    live = _JOBS.alias("live")
    counts = [
        select(func.count())
        .select_from(live)
        .where(live.c.queue == _QUEUES.c.name, live.c.status == str(status))
        .scalar_subquery()
        for status in _LIVE
    ]
    return functools.reduce(operator.add, counts)


def _live_keyed(held: BindParameter[list[str]]) -> Subquery:
    """The keyed live jobs of the held queues (queue, concurrency_key), read per live status
    as `_live_in_queue` reads them."""
    live = _JOBS.alias("live")
    return union_all(
        *(
            select(live.c.queue, live.c.concurrency_key).where(
                live.c.queue.in_(held), live.c.status == str(status), live.c.concurrency_key.is_not(None)
            )
            for status in _LIVE
        )
    ).subquery("live_keyed")


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


def window_us(queue: FromClause) -> ColumnElement[int]:
    """A rate-limited queue's period in whole microseconds."""
    return func.cast(func.round(queue.c.rate_limit_period_s * 1_000_000), BigInteger)


# Rows of limited queues the claim looks at per job of its batch: enough to fill a batch when
# a few keys fill up within it; the first row looked at always fits (see `limited_candidates`).
SCAN_PER_CLAIMED_JOB = 4


def _smaller(first: ColumnElement[int], second: ColumnElement[int]) -> ColumnElement[int]:
    """The smaller of two limits' room, where NULL is no limit."""
    return case(
        (first.is_(None), second),
        (second.is_(None), first),
        (first < second, first),
        else_=second,
    )


def limited_candidates(
    now: ColumnElement[datetime], conditions: Iterable[ColumnElement[bool]], lanes: bool = False
) -> Select:
    """The jobs the limited part claims in one statement: due jobs of the queues this claimer
    holds (`cas_limited`), in claim order, as many as every limit has room for, up to the batch.

    The room is counted once per statement, in two small CTEs: each queue's free slots and
    rate window (`room`), each key's live jobs (`key_live`). The scan walks the queued jobs
    in claim order and passes over those of a full queue or key (hashed lookups, so the scan
    can stop at its LIMIT instead of counting for every queued row): its first row always
    fits, so a claim makes progress whenever any job may start. Within the `cas_scan` rows
    it reads, a key takes at most its room (rank within the key), then a queue at most its
    room (rank within the queue). `conditions`: the claim's own (type, lease) on the job.

    The two LIMITs are written into the statement's text (`literal_execute`): PostgreSQL then
    keeps one generic plan per batch size for a prepared statement, where a LIMIT it cannot
    see makes it plan the statement again at every claim (half its time).

    `lanes` (PostgreSQL): only jobs of the lanes this claimer holds (`cas_lanes`), and each
    queue's room less `cas_reserve` (`lane_reserve`); a claimer alone on its queues reserves 0.
    """
    held: BindParameter[list[str]] = bindparam("cas_limited", expanding=True)
    reserve = bindparam("cas_reserve", type_=Integer)
    live_in_queue = _live_in_queue()
    starts_in_window = (
        select(func.count())
        .select_from(_STARTS)
        .where(
            _STARTS.c.queue == _QUEUES.c.name,
            _STARTS.c.at_us > bindparam("cas_now_us", type_=BigInteger) - window_us(_QUEUES),
        )
        .scalar_subquery()
    )
    # MATERIALIZED: counted once, not once per row that reads them.
    counted = (
        select(
            _QUEUES.c.name,
            _QUEUES.c.key_concurrency,
            case((_QUEUES.c.concurrency.is_not(None), _QUEUES.c.concurrency - live_in_queue - reserve)).label("slots"),
            case(
                (_QUEUES.c.rate_limit_count.is_not(None), _QUEUES.c.rate_limit_count - starts_in_window - reserve)
            ).label("starts"),
        )
        .where(_QUEUES.c.name.in_(held), _QUEUES.c.paused.is_(False))
        .cte("counted")
        .prefix_with("MATERIALIZED")
    )
    room = select(
        counted.c.name, counted.c.key_concurrency, _smaller(counted.c.slots, counted.c.starts).label("room")
    ).cte("room")
    live = _live_keyed(held)
    key_live = (
        select(live.c.queue, live.c.concurrency_key, func.count().label("live"))
        .group_by(live.c.queue, live.c.concurrency_key)
        .cte("key_live")
        .prefix_with("MATERIALIZED")
    )
    full_queues = select(room.c.name).where(room.c.room <= 0)
    full_keys = (
        select(key_live.c.queue, key_live.c.concurrency_key)
        .join(room, room.c.name == key_live.c.queue)
        .where(key_live.c.live >= room.c.key_concurrency)
    )
    if lanes:
        conditions = [*conditions, lane_of(_JOBS).in_(bindparam("cas_lanes", expanding=True))]
    scanned = (
        select(_JOBS.c.id, _JOBS.c.queue, _JOBS.c.concurrency_key, _JOBS.c.priority)
        .where(
            _JOBS.c.status == Status.QUEUED,
            _JOBS.c.run_after <= now,
            _JOBS.c.queue.in_(held),
            _JOBS.c.queue.not_in(full_queues),
            or_(
                _JOBS.c.concurrency_key.is_(None),
                tuple_(_JOBS.c.queue, _JOBS.c.concurrency_key).not_in(full_keys),
            ),
            *conditions,
        )
        .order_by(_JOBS.c.priority.desc(), _JOBS.c.id)
        .limit(bindparam("cas_scan", type_=Integer, literal_execute=True))
        .subquery("scanned")
    )
    key_room = case(
        (
            and_(room.c.key_concurrency.is_not(None), scanned.c.concurrency_key.is_not(None)),
            room.c.key_concurrency - func.coalesce(key_live.c.live, 0),
        )
    )
    keyed = (
        select(
            scanned,
            room.c.room,
            key_room.label("key_room"),
            func.row_number()
            .over(
                partition_by=(scanned.c.queue, scanned.c.concurrency_key),
                order_by=(scanned.c.priority.desc(), scanned.c.id),
            )
            .label("key_rank"),
        )
        .select_from(
            scanned.join(room, room.c.name == scanned.c.queue).outerjoin(
                key_live,
                and_(key_live.c.queue == scanned.c.queue, key_live.c.concurrency_key == scanned.c.concurrency_key),
            )
        )
        .subquery("keyed")
    )
    within_keys = (
        select(keyed.c.id, keyed.c.queue, keyed.c.priority, keyed.c.room)
        .where(or_(keyed.c.key_room.is_(None), keyed.c.key_rank <= keyed.c.key_room))
        .subquery("within_keys")
    )
    ranked = select(
        within_keys,
        func.row_number()
        .over(partition_by=within_keys.c.queue, order_by=(within_keys.c.priority.desc(), within_keys.c.id))
        .label("queue_rank"),
    ).subquery("ranked")
    return (
        select(ranked.c.id)
        .where(or_(ranked.c.room.is_(None), ranked.c.queue_rank <= ranked.c.room))
        .order_by(ranked.c.priority.desc(), ranked.c.id)
        .limit(bindparam("cas_batch_size", type_=Integer, literal_execute=True))
    )


def record_starts(rows: FromClause) -> UpdateBase:
    """A follow-up of the limited claim: one `queue_starts` row per claimed job of a rate-limited queue."""
    return insert(_STARTS).from_select(
        ["queue", "at_us"],
        select(rows.c.queue, bindparam("cas_now_us", type_=BigInteger)).where(
            rows.c.queue.in_(select(_QUEUES.c.name).where(_QUEUES.c.rate_limit_count.is_not(None)))
        ),
    )


# Lanes of a limited queue (PostgreSQL). More lanes let more claimers run beside each other
# (a batch of 10 over many keys holds a few of 32); each lane another claimer may hold costs
# LANE_BATCH_MAX of the queue's concurrency while a claim counts, so a queue with less than
# `lane_reserve(1) + LANE_BATCH_MAX` free (640) is claimed alone, as before lanes.
LANES = 32
LANE_BATCH_MAX = 20


def lane_of(jobs: FromClause) -> ColumnElement[int]:
    """A job's lane: its key's (every job of a key is in one lane), else its id's."""
    keyed = func.abs(func.hashtext(jobs.c.concurrency_key) % LANES)
    return case((jobs.c.concurrency_key.is_(None), func.cast(jobs.c.id % LANES, Integer)), else_=keyed)


def lane_lock(queue: ColumnElement[str], lane: ColumnElement[int], *, wait: bool = False) -> ColumnElement[bool]:
    """The advisory lock of one lane of a queue, held to the end of the transaction: two
    int4 keys, a space apart from the single bigint keys of webapp.store.locks."""
    key = func.hashtext(func.concat("jobwarden.lane:", queue))
    return (func.pg_advisory_xact_lock if wait else func.pg_try_advisory_xact_lock)(key, lane)


def lane_reserve(lanes_held: int) -> int:
    """The room a lane claimer leaves for the claimers holding the other lanes."""
    return (LANES - lanes_held) * LANE_BATCH_MAX


class HeldQueue(NamedTuple):
    name: str
    rate_limited: bool
    lanes_fit: bool  # no rate limit, and concurrency left for a lane claim beside every other lane


def limited_queues(now: datetime, types: list[str] | None, queues: list[str] | None) -> list[HeldQueue]:
    """The restricted, unpaused queues with a due job this claimer may take, in name order.
    Read without a lock: which queues to lock, and how (`hold_lanes` or `lock_whole_queues`)."""
    rows = db.session.execute(
        _limited_queues_statement(bool(types), bool(queues)),
        {"lq_now": now, "lq_types": types or [], "lq_queues": queues or []},
    )
    return [HeldQueue(name, bool(rate), bool(fit)) for name, rate, fit in rows]


@functools.lru_cache(maxsize=4)
def _limited_queues_statement(by_type: bool, by_queue: bool) -> Select:
    """Built once per shape: building the statement cost a claim more than running it."""
    due = select(_JOBS.c.id).where(
        _JOBS.c.queue == _QUEUES.c.name,
        _JOBS.c.status == Status.QUEUED,
        _JOBS.c.run_after <= bindparam("lq_now", type_=_JOBS.c.run_after.type),
    )
    if by_type:
        due = due.where(_JOBS.c.type.in_(bindparam("lq_types", expanding=True)))
    lanes_fit = and_(
        _QUEUES.c.rate_limit_count.is_(None),
        or_(
            _QUEUES.c.concurrency.is_(None),
            _QUEUES.c.concurrency - _live_in_queue() >= lane_reserve(1) + LANE_BATCH_MAX,
        ),
    )
    statement = (
        select(
            _QUEUES.c.name, _QUEUES.c.rate_limit_count.is_not(None).label("rate_limited"), lanes_fit.label("lanes_fit")
        )
        .where(restricted(), _QUEUES.c.paused.is_(False), due.exists())
        .order_by(_QUEUES.c.name)
    )
    if by_queue:
        statement = statement.where(_QUEUES.c.name.in_(bindparam("lq_queues", expanding=True)))
    return statement


def hold_lanes(
    now: datetime, types: list[str] | None, queues: list[str] | None, batch: int
) -> tuple[list[HeldQueue], list[int] | None]:
    """PostgreSQL, one statement: the held queues (`limited_queues`) and, when that is one
    queue whose lanes fit, the lanes of it this claim holds to the end of its transaction
    (None: the claim must `lock_whole_queues`). The first due jobs in claim order
    (SCAN_PER_CLAIMED_JOB per job of the batch) name the lanes, tried in the order their
    first job comes; a lane another claimer holds is passed over, and the trying stops once
    the lanes taken hold as many of those jobs as the batch would have if none were passed
    over. When every one is held, waits for the first job's lane (a statement of its own)."""
    params = {
        "lq_now": now,
        "lq_types": types or [],
        "lq_queues": queues or [],
        "lane_batch": batch,
        "lane_scan": batch * SCAN_PER_CLAIMED_JOB,
    }
    hold, wait_for_lane = _lane_statements(bool(types), bool(queues))
    rows = db.session.execute(hold, params).all()
    held = [HeldQueue(name, bool(rate), bool(fit)) for name, rate, fit, _ in rows]
    if len(held) != 1 or not held[0].lanes_fit:
        return held, None
    taken = rows[0][3]
    if taken:
        return held, [int(lane) for lane in taken]
    waited = db.session.execute(wait_for_lane, {**params, "lane_queue": held[0].name}).all()
    return held, [int(lane) for lane, _ in waited]


@functools.lru_cache(maxsize=4)
def _lane_statements(by_type: bool, by_queue: bool) -> tuple[Select, Select]:
    """Built once per shape: building these statements cost a claim more than running them."""
    held = _limited_queues_statement(by_type, by_queue).cte("held").prefix_with("MATERIALIZED")
    alone = (
        select(held.c.name)
        .where(held.c.lanes_fit, select(func.count()).select_from(held).scalar_subquery() == 1)
        .scalar_subquery()
    )
    try_lanes, _ = _lanes_of(alone, by_type)
    taken = try_lanes.subquery("taken")
    hold = select(
        held.c.name, held.c.rate_limited, held.c.lanes_fit, select(func.array_agg(taken.c.lane)).scalar_subquery()
    ).order_by(held.c.name)
    _, wait_for_lane = _lanes_of(bindparam("lane_queue", type_=String), by_type)
    return hold, wait_for_lane


def _lanes_of(name: ColumnElement[str], by_type: bool) -> tuple[Select, Select]:
    """The lanes of queue `name` to try (NULL: none), and the wait for its first job's lane."""
    # Keys already at their limit are left out, as the claim leaves them (a hint: read
    # before the lanes are held, so the claim counts again).
    live = _JOBS.alias("live")
    live_keys = union_all(
        *(
            select(live.c.concurrency_key).where(
                live.c.queue == name, live.c.status == str(status), live.c.concurrency_key.is_not(None)
            )
            for status in _LIVE
        )
    ).subquery("live_keys")
    key_limit = select(_QUEUES.c.key_concurrency).where(_QUEUES.c.name == name).scalar_subquery()
    full_keys = (
        select(live_keys.c.concurrency_key).group_by(live_keys.c.concurrency_key).having(func.count() >= key_limit)
    )
    due = [
        _JOBS.c.status == Status.QUEUED,
        _JOBS.c.run_after <= bindparam("lq_now", type_=_JOBS.c.run_after.type),
        _JOBS.c.queue == name,
        or_(_JOBS.c.concurrency_key.is_(None), _JOBS.c.concurrency_key.not_in(full_keys)),
    ]
    if by_type:
        due.append(_JOBS.c.type.in_(bindparam("lq_types", expanding=True)))
    first_jobs = (
        select(lane_of(_JOBS).label("lane"), _JOBS.c.priority, _JOBS.c.id)
        .where(*due)
        .order_by(_JOBS.c.priority.desc(), _JOBS.c.id)
        .limit(bindparam("lane_scan", type_=Integer, literal_execute=True))
        .subquery("first_jobs")
    )
    ranked = select(
        first_jobs.c.lane,
        func.row_number().over(order_by=(first_jobs.c.priority.desc(), first_jobs.c.id)).label("rank"),
    ).subquery("ranked")
    per_lane = (
        select(ranked.c.lane, func.min(ranked.c.rank).label("first"), func.count().label("jobs"))
        .group_by(ranked.c.lane)
        .subquery("per_lane")
    )
    # MATERIALIZED: the lanes and their order are settled before any lock is tried.
    lanes = (
        select(
            per_lane.c.lane,
            per_lane.c.first,
            (func.sum(per_lane.c.jobs).over(order_by=per_lane.c.first) - per_lane.c.jobs).label("before"),
        )
        .cte("lanes")
        .prefix_with("MATERIALIZED")
    )
    batch = bindparam("lane_batch", type_=Integer)
    wanted = select(func.count()).select_from(lanes).where(lanes.c.before < batch).scalar_subquery()
    # The lock is tried in the outer query, row by row under its LIMIT, on the lanes in order:
    # OFFSET 0 keeps PostgreSQL from pushing the lock's condition below the sort (it did),
    # where it would try every lane before the LIMIT stops.
    in_order = select(lanes.c.lane, lanes.c.first).order_by(lanes.c.first).offset(0).subquery("in_order")
    try_lanes = select(in_order.c.lane).where(lane_lock(name, in_order.c.lane)).limit(wanted)
    head = select(first_jobs.c.lane).order_by(first_jobs.c.priority.desc(), first_jobs.c.id).limit(1).subquery()
    wait_for_lane = select(head.c.lane, lane_lock(name, head.c.lane, wait=True))
    return try_lanes, wait_for_lane


def lock_whole_queues(queues: list[str]) -> None:
    """PostgreSQL: every lane of each of `queues`, waiting for each, in (queue name, lane)
    order so claimers that wait never deadlock (a lane claimer waits only while it holds none)."""
    held = select(func.unnest(bindparam("queues", queues, type_=ARRAY(String))).label("queue")).subquery("held")
    lane = func.generate_series(0, LANES - 1).label("lane")
    # Sorted in a subquery (OFFSET 0: kept apart), so the locks are taken in that order.
    ordered = select(held.c.queue, lane).order_by(held.c.queue, lane).offset(0).subquery("ordered")
    db.session.execute(select(lane_lock(ordered.c.queue, ordered.c.lane, wait=True))).all()


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
# its window; and a finish that frees a slot wakes waiting claims (`freed_slot_notice`).


def freed_slot_notice(rows: FromClause) -> Select:
    """PostgreSQL: the finishing statement's own wake-up of every waiting claim, sent only when
    one of its moved rows (live jobs that finished) held a slot of a queue with `concurrency`
    or `key_concurrency`; delivered on commit like any NOTIFY. A CTE of the statement, so a
    finish costs no round trip of its own (payload: `cas_wake_payload`)."""
    held_slot = (
        select(rows.c.id)
        .join(_QUEUES, _QUEUES.c.name == rows.c.queue)
        .where(or_(_QUEUES.c.concurrency.is_not(None), _QUEUES.c.key_concurrency.is_not(None)))
    )
    return select(func.pg_notify(literal(CHANNEL), bindparam("cas_wake_payload", type_=String))).where(
        held_slot.exists()
    )


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
