"""Flow control in the claim: a queue's pause, `concurrency`, `key_concurrency` and
`rate_limit`, held by the statement that claims (`transitions.claim`), never by a read
followed by a write.

A claim has two parts. The fast part takes jobs of queues with no limit and no pause: one
scan of the claim order, whose only extra cost is `queue NOT IN (restricted queues)`, or,
while those queues hold a backlog (`hints`), each other queue's first jobs
(`fast_candidates_per_queue`), so the backlog is not read at every claim. The limited part
counts, once per statement, each held queue's live jobs and its starts in the window
(now - period, now] and each key's live jobs, and takes in claim order as many jobs as that
room allows (`limited_candidates`), so no limit is passed at the moment of the write; a full
queue is passed over as a whole. Counting per statement, not per candidate row, keeps a
claim's cost to the rows it looks at, not the queue's depth. While limits are in use one
statement takes both parts' candidates and claims the first of them all, so a claim keeps
one order (priority, then age) across queues; else the fast part alone, then the limited
part for what is left of the batch.

Concurrent claimers must not both count the same state. SQLite has one writer: the claim
takes the write lock before it reads the time, and holds it while it counts and claims.
PostgreSQL claimers of a limited queue take turns on the queue's row, whose `claim_turn`
every limited claim moves on:
- In one statement (`turns_in_statement`), the usual way: the statement counts the queues
  as its snapshot shows them, and claims only from those whose row it can lock at once and
  whose turn is still the one in its snapshot (nothing claimed from them since, nothing
  under way). Under READ COMMITTED a statement's snapshot is taken at its start, before any
  lock it waits for; so this statement waits for none (SKIP LOCKED) and rechecks the turn.
- Otherwise (`take_turns`), for the queues whose turn it missed: their rows are locked in
  name order (claimers never deadlock), waiting for the claimer that holds one, their turn
  moved on, and the claim statement after that lock starts later and counts what the
  claimer it waited for claimed. That costs the claim a transaction and a statement more.
A change of a queue's limits or pause moves its turn too.

A rate-limited queue's starts are rows of `queue_starts` (whole microseconds since the
epoch), written by the claim that takes the job and pruned past the queue's period by
the same transaction: a sliding window, so no window of `period_s` ever holds more than
`limit` starts (a token bucket would let 2 × limit through across a boundary).
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.sql.expression import CTE, FromClause, Subquery, UpdateBase
from sqlalchemy.sql.selectable import NamedFromClause
from sqlalchemy.types import BigInteger, Integer, String

from ..domain.statuses import LIVE, Status
from .dialects import on_postgresql
from .extensions import db
from .models import Job, Queue, QueueStart
from .sql_time import EPOCH, MICROSECOND
from .status_sql import names_in_the_text, status_is
from .transaction import one_transaction_from_here
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
        .where(live.c.queue == _QUEUES.c.name, status_is(live.c.status, status))
        .scalar_subquery()
        for status in _LIVE
    ]
    return functools.reduce(operator.add, counts)


def _live_keyed(held: Held) -> Subquery:
    """The keyed live jobs of the held queues (queue, concurrency_key), read per live status
    as `_live_in_queue` reads them."""
    live = _JOBS.alias("live")
    return union_all(
        *(
            select(live.c.queue, live.c.concurrency_key).where(
                held.contains(live.c.queue), status_is(live.c.status, status), live.c.concurrency_key.is_not(None)
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


def queued_queues() -> CTE:
    """The queues holding queued jobs, by name (a NULL row ends the list): a skip scan of
    ix_jobs_queue_claim, one index probe per queue however deep each is."""
    first = select(func.min(_JOBS.c.queue).label("queue")).where(status_is(_JOBS.c.status, Status.QUEUED))
    found = first.cte("queued_queues", recursive=True)
    after = (
        select(func.min(_JOBS.c.queue))
        .where(status_is(_JOBS.c.status, Status.QUEUED), _JOBS.c.queue > found.c.queue)
        .scalar_subquery()
    )
    return found.union_all(select(after).where(found.c.queue.is_not(None)))


def unrestricted_queued_queues() -> Select[tuple[str]]:
    """The names of the queues holding queued jobs that have no limit and no pause."""
    found = queued_queues()
    restricted_names = select(_QUEUES.c.name).where(restricted()).scalar_subquery()
    return select(found.c.queue).where(found.c.queue.is_not(None), found.c.queue.not_in(restricted_names))


def fast_candidates_per_queue(
    conditions: Iterable[ColumnElement[bool]], by_queue: bool, batch_size: BindParameter[int]
) -> Select[tuple[int, int]]:
    """PostgreSQL, while paused or limited queues hold a backlog (`hints`): the fast part's
    first `batch_size` jobs (id, priority) in claim order, locked (SKIP LOCKED), read queue by
    queue. One scan of the claim order
    passes over the queued jobs of paused and limited queues one by one: a paused queue of
    100,000 jobs made every claim of another queue take 60 ms. Each unrestricted queue's first
    jobs are an index range instead; `conditions`: the claim's own on the job (status queued
    among them); `by_queue`: only the claimer's queues (`cas_queues`). The jobs a queue locked
    that others come before stay locked to the statement's end."""
    found = queued_queues()
    each = (
        select(_JOBS.c.id, _JOBS.c.priority)
        .where(_JOBS.c.queue == found.c.queue, *conditions)
        .order_by(_JOBS.c.priority.desc(), _JOBS.c.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True, of=_JOBS)
        .lateral("each_queue")
    )
    restricted_names = select(_QUEUES.c.name).where(restricted()).scalar_subquery()
    statement = (
        select(each.c.id, each.c.priority)
        .select_from(found.join(each, true()))
        .where(found.c.queue.is_not(None), found.c.queue.not_in(restricted_names))
        .order_by(each.c.priority.desc(), each.c.id)
        .limit(batch_size)
    )
    if by_queue:
        statement = statement.where(found.c.queue.in_(names_in_the_text("cas_queues")))
    return statement


def due_in_claim_order(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """SQLite: `run_after <= now`, as a condition no index reads (a unary +, SQLite's own way to
    say so). As an index range it made SQLite read a queue's queued jobs by ix_jobs_queued_ready
    and sort all of them, where ix_jobs_queue_claim gives the queue's first jobs in claim order."""
    return literal_column(f"+{_JOBS.name}.run_after", _JOBS.c.run_after.type) <= now


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


def _free_slots_and_starts(now_us: ColumnElement[int]) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """A `queues` row's free slots (`concurrency` less its live jobs) and free starts (its rate
    window's `limit` less the starts in (now - period, now]); NULL where it has no such limit."""
    starts_in_window = (
        select(func.count())
        .select_from(_STARTS)
        .where(_STARTS.c.queue == _QUEUES.c.name, _STARTS.c.at_us > now_us - window_us(_QUEUES))
        .scalar_subquery()
    )
    return (
        case((_QUEUES.c.concurrency.is_not(None), _QUEUES.c.concurrency - _live_in_queue())),
        case((_QUEUES.c.rate_limit_count.is_not(None), _QUEUES.c.rate_limit_count - starts_in_window)),
    )


def limited_candidates(now: ColumnElement[datetime], conditions: Iterable[ColumnElement[bool]], held: Held) -> Select:
    """The jobs the limited part claims in one statement (id, priority): due jobs of the `held`
    queues (those whose turn this claimer holds), in claim order, as many as every limit has
    room for, up to the batch.

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
    """
    slots, starts = _free_slots_and_starts(bindparam("cas_now_us", type_=BigInteger))
    # MATERIALIZED: counted once, not once per row that reads them.
    counted = (
        select(_QUEUES.c.name, _QUEUES.c.key_concurrency, slots.label("slots"), starts.label("starts"))
        .where(held.contains(_QUEUES.c.name), _QUEUES.c.paused.is_(False))
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
    with_room = select(room.c.name).where(or_(room.c.room.is_(None), room.c.room > 0))
    full_keys = (
        select(key_live.c.queue, key_live.c.concurrency_key)
        .join(room, room.c.name == key_live.c.queue)
        .where(key_live.c.live >= room.c.key_concurrency)
    )
    scan = bindparam("cas_scan", type_=Integer, literal_execute=True)
    claim_order = (_JOBS.c.priority.desc(), _JOBS.c.id)
    scanned_jobs = select(_JOBS.c.id, _JOBS.c.queue, _JOBS.c.concurrency_key, _JOBS.c.priority).where(
        status_is(_JOBS.c.status, Status.QUEUED),
        or_(
            _JOBS.c.concurrency_key.is_(None),
            tuple_(_JOBS.c.queue, _JOBS.c.concurrency_key).not_in(full_keys),
        ),
        *conditions,
    )
    # Each held queue with room: its first jobs in claim order, an index range however deep the
    # queue; then the first of them all. A full queue is passed over as a whole: as a condition
    # on each of its rows, a claim read the whole backlog of a full queue (a GPU queue's
    # waiting jobs) every time; as one scan over `queue IN (…)`, every queued job of the held
    # queues, to sort them.
    if held.size is None:
        # PostgreSQL: a LATERAL range per queue, run only for the queues the outer condition keeps.
        names = held.names
        if names is None:
            names = select(_QUEUES.c.name).where(held.contains(_QUEUES.c.name)).subquery("held_names")
        each = (
            scanned_jobs.where(_JOBS.c.queue == names.c.name, _JOBS.c.run_after <= now)
            .order_by(*claim_order)
            .limit(scan)
            .lateral("each")
        )
        scanned = (
            select(each)
            .select_from(names.join(each, true()))
            .where(names.c.name.in_(with_room))
            .order_by(each.c.priority.desc(), each.c.id)
            .limit(scan)
            .subquery("scanned")
        )
    else:
        # SQLite (no LATERAL): one member per queue, whose name is a parameter. Its room decides
        # the member's LIMIT, which SQLite reads once, before the member reads any row; as a
        # condition it was checked on every row.
        members = []
        for number in range(held.size):
            name = bindparam(f"cas_held_{number}", type_=String)
            member = (
                scanned_jobs.where(_JOBS.c.queue == name, due_in_claim_order(now))
                .order_by(*claim_order)
                .limit(case((name.in_(with_room), scan), else_=0))
                .subquery(f"held_{number}")
            )
            members.append(select(member))
        every = union_all(*members).subquery("held_jobs") if len(members) > 1 else members[0].subquery("held_jobs")
        scanned = select(every).order_by(every.c.priority.desc(), every.c.id).limit(scan).subquery("scanned")
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
        select(ranked.c.id, ranked.c.priority)
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


def prune_starts(rows: FromClause) -> UpdateBase:
    """A follow-up of the limited claim: drop the starts of the claimed jobs' queues that no
    window ending now or later can count (`cas_prune_us`: now less a margin, PRUNE_MARGIN_S,
    for a claimer whose clock reads a little behind this one's), and every start of a queue
    that no longer has a rate limit. The claimers of a queue take turns, so its prunes do too."""
    period = select(window_us(_QUEUES)).where(_QUEUES.c.name == _STARTS.c.queue).scalar_subquery()
    return delete(_STARTS).where(
        _STARTS.c.queue.in_(select(rows.c.queue)),
        or_(period.is_(None), _STARTS.c.at_us <= bindparam("cas_prune_us", type_=BigInteger) - period),
    )


def prune_before_us(now: datetime) -> int:
    return epoch_microseconds(now - timedelta(seconds=PRUNE_MARGIN_S))


class Held(NamedTuple):
    """The queues whose jobs a limited claim takes: one of a bound list of names (`cas_limited`,
    read before the claim), or of those the claim's own statement found (`turns_in_statement`)."""

    contains: Callable[[ColumnElement[str]], ColumnElement[bool]]  # the queue a column names is one
    names: NamedFromClause | None = None  # PostgreSQL, found in the statement: their names (column `name`)
    size: int | None = None  # SQLite: how many, each also named alone in `cas_held_{n}`


def held_by_name(count: int | None = None) -> Held:
    """The queues named in `cas_limited`; on SQLite, `count` of them, each also in `cas_held_{n}`."""
    names: BindParameter[list[str]] = bindparam("cas_limited", expanding=True)
    return Held(lambda queue: queue.in_(names), size=count)


def held_params(held: list[str]) -> dict[str, str]:
    """SQLite: `held_by_name`'s parameters of each queue alone."""
    return {f"cas_held_{number}": name for number, name in enumerate(held)}


def queues_with_due_jobs(
    now: ColumnElement[datetime] | datetime,
    types: ColumnElement[bool] | None,
    queues: ColumnElement[bool] | None,
    table: FromClause = _QUEUES,
) -> Select[tuple[str, int]]:
    """The restricted, unpaused queues (rows of `table`) holding a due job this claimer may take,
    with their turn: the queues a limited claim takes its turn on. `types` and `queues`: the
    claimer's conditions on a job's type and on a queue's name (None: any)."""
    due = select(_JOBS.c.id).where(
        _JOBS.c.queue == table.c.name, status_is(_JOBS.c.status, Status.QUEUED), _JOBS.c.run_after <= now
    )
    if types is not None:
        due = due.where(types)
    # The first due job, not EXISTS: a planner without statistics of the jobs made EXISTS a
    # join with every queued job of the queue; a subquery with a LIMIT stops at the first.
    first_due = due.limit(1).scalar_subquery()
    statement = select(table.c.name, table.c.claim_turn).where(
        restricted(table), table.c.paused.is_(False), first_due.is_not(None)
    )
    if queues is not None:
        statement = statement.where(queues)
    return statement


class Turns(NamedTuple):
    held: Held  # the queues whose turn the statement took
    missed: ColumnElement[int]  # queues with due jobs whose turn another claimer holds or moved on


def turns_in_statement(now: ColumnElement[datetime], by_type: bool, by_queue: bool) -> Turns:
    """PostgreSQL: the turns of a claim that counts and claims in one statement (the claimer's
    types in `cas_types`, its queues in `cas_queues`). The limited
    queues with due jobs as the statement's snapshot shows them (`seen`, with the turn each
    had); of those, the ones whose turn is still the one seen are locked and their turn moved
    on (`turn`). A queue another claimer holds is passed over (SKIP LOCKED: this statement
    never waits for a queue), and so is one whose turn moved since the snapshot: READ COMMITTED
    locks a row's newest version and checks the condition again on it. Every claim of a
    limited queue moves its turn, so a turn taken here means no claim of the queue committed
    after the snapshot or is under way: the snapshot's count of its live jobs and starts is
    the queue's count now. A claim that missed a queue's turn takes it with `take_turns`."""
    types = _JOBS.c.type.in_(names_in_the_text("cas_types")) if by_type else None
    queues = _QUEUES.c.name.in_(names_in_the_text("cas_queues")) if by_queue else None
    seen = queues_with_due_jobs(now, types, queues).cte("seen").prefix_with("MATERIALIZED")
    taken = _QUEUES.alias("taken")
    still_as_seen = (
        select(taken.c.name)
        .join(seen, and_(seen.c.name == taken.c.name, seen.c.claim_turn == taken.c.claim_turn))
        .with_for_update(of=taken, skip_locked=True)
    )
    turn = (
        update(_QUEUES)
        .where(_QUEUES.c.name.in_(still_as_seen.scalar_subquery()))
        .values(claim_turn=_QUEUES.c.claim_turn + 1)
        .returning(_QUEUES.c.name)
        .cte("turn")
    )
    missed = (
        select(func.count()).select_from(seen).scalar_subquery()
        - select(func.count()).select_from(turn).scalar_subquery()
    )
    # The counts read the held queues' live jobs by `queue = ANY(an array made once)`, an index
    # condition as a bound list is; `queue IN (SELECT …)` was a join that read every queued job
    # of the queue first.
    names = func.array(select(turn.c.name).scalar_subquery())
    return Turns(Held(lambda queue: queue == any_(names), turn), missed)


class HeldQueue(NamedTuple):
    name: str
    rate_limited: bool


def limited_queues_with_due_jobs(
    now: datetime, types: list[str] | None, queues: list[str] | None, *, with_room: bool = False
) -> list[HeldQueue]:
    """`queues_with_due_jobs` for a claimer of `types` in `queues` (None or empty: any), in name
    order; `with_room`, only those whose limits have room now (SQLite, under the write lock: a
    claim that would find every such queue full leaves their count out of its statement, which
    costs a claim of other queues 2-3 ms)."""
    statement = _limited_queues_with_due_jobs(bool(types), bool(queues), with_room)
    params = {"cas_now": now, "cas_now_us": epoch_microseconds(now), "cas_types": types, "cas_queues": queues}
    return [HeldQueue(row[0], bool(row[1])) for row in db.session.execute(statement, params)]


@functools.lru_cache(maxsize=8)
def _limited_queues_with_due_jobs(by_type: bool, by_queue: bool, with_room: bool) -> Select[Any]:
    """The statement of `limited_queues_with_due_jobs`, built once: a claim on SQLite reads it each time."""
    now = bindparam("cas_now", type_=_JOBS.c.run_after.type)
    types = _JOBS.c.type.in_(names_in_the_text("cas_types")) if by_type else None
    queues = _QUEUES.c.name.in_(names_in_the_text("cas_queues")) if by_queue else None
    claimable = queues_with_due_jobs(now, types, queues).with_only_columns(
        _QUEUES.c.name, _QUEUES.c.rate_limit_count.is_not(None)
    )
    if with_room:
        room = _smaller(*_free_slots_and_starts(bindparam("cas_now_us", type_=BigInteger)))
        claimable = claimable.where(or_(room.is_(None), room > 0))
    return claimable.order_by(_QUEUES.c.name)


def take_turns(now: datetime, types: list[str] | None, queues: list[str] | None) -> list[HeldQueue]:
    """PostgreSQL: the limited queues with a due job this claimer may take, their turns taken
    until the claim's transaction ends. Their rows are locked in name order (claimers never
    deadlock), waiting for a claimer that holds one, and their turn moved on, so a claim in one
    statement that counted them before sees that it missed them (`turns_in_statement`)."""
    one_transaction_from_here()  # a claim that began in autocommit: the turns must outlive this statement
    params = {"cas_now": now, "cas_types": types, "cas_queues": queues}
    rows = db.session.execute(_take_turns(bool(types), bool(queues)), params)
    return sorted(HeldQueue(name, bool(rated)) for name, rated in rows)


@functools.lru_cache(maxsize=4)
def _take_turns(by_type: bool, by_queue: bool) -> UpdateBase:
    """The statement of `take_turns`, built once: built at each claim, it cost a limited batch
    claim 2 ms of the claimer's CPU, as much as a whole claim without limits."""
    taken = _QUEUES.alias("taken")
    now = bindparam("cas_now", type_=_JOBS.c.run_after.type)
    types = _JOBS.c.type.in_(names_in_the_text("cas_types")) if by_type else None
    queues = taken.c.name.in_(names_in_the_text("cas_queues")) if by_queue else None
    in_order = (
        queues_with_due_jobs(now, types, queues, taken)
        .with_only_columns(taken.c.name)
        .order_by(taken.c.name)
        .with_for_update(of=taken)
        .cte("in_order")
        .prefix_with("MATERIALIZED")
    )
    return (
        update(_QUEUES)
        .where(_QUEUES.c.name == in_order.c.name)
        .values(claim_turn=_QUEUES.c.claim_turn + 1)
        .returning(_QUEUES.c.name, _QUEUES.c.rate_limit_count.is_not(None))
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
# Queued jobs of paused and limited queues from which the fast part reads queue by queue
# (`fast_candidates_per_queue`): below, one scan of the claim order passes over them in less
# time (~0.5 µs each) than reading queue by queue costs (~1 ms a claim).
BACKLOG_PER_QUEUE = 1_000


class FlowHints(NamedTuple):
    """Read at most once a second per process (`hints`): how a claim goes about its work,
    never what it may take."""

    limits_in_use: bool  # some queue is paused or limited
    restricted_backlog: bool  # those queues hold BACKLOG_PER_QUEUE queued jobs or more


_hints_seen: tuple[float, FlowHints] = (float("-inf"), FlowHints(False, False))


def held_back_until(now: datetime, types: list[str] | None, queues: list[str] | None) -> datetime | None:
    """When a waiting claim should look again for jobs its queues' limits hold back (None: none held)."""
    held_names = [queue.name for queue in limited_queues_with_due_jobs(now, types, queues)]
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


def hints() -> FlowHints:
    """The flow hints, read again after LIMITS_IN_USE_TTL_S or a change in this process."""
    global _hints_seen
    checked_at, seen = _hints_seen
    if time.monotonic() - checked_at > LIMITS_IN_USE_TTL_S:
        restricted_names = select(_QUEUES.c.name).where(restricted())
        backlog = _restricted_backlog(on_postgresql(), restricted_names)
        in_use, backlog_count = db.session.execute(
            select(restricted_names.exists(), select(func.count()).select_from(backlog).scalar_subquery())
        ).one()
        seen = FlowHints(bool(in_use), backlog_count >= BACKLOG_PER_QUEUE)
        _hints_seen = (time.monotonic(), seen)
    return seen


def _restricted_backlog(postgresql: bool, restricted_names: Select[tuple[str]]) -> Subquery:
    """The ids of up to BACKLOG_PER_QUEUE queued jobs of paused and limited queues. PostgreSQL:
    each such queue's queued jobs, an index range each (a LATERAL): as `queue IN (restricted
    names)`, a plan that read the jobs first read every queued job of every queue, and all of
    them when no queue was restricted. SQLite, which has no LATERAL, reads the names first."""
    if not postgresql:
        return (
            select(_JOBS.c.id)
            .where(status_is(_JOBS.c.status, Status.QUEUED), _JOBS.c.queue.in_(restricted_names))
            .limit(BACKLOG_PER_QUEUE)
            .subquery()
        )
    held = restricted_names.subquery("held")
    each = (
        select(_JOBS.c.id)
        .where(_JOBS.c.queue == held.c.name, status_is(_JOBS.c.status, Status.QUEUED))
        .limit(BACKLOG_PER_QUEUE)
        .lateral("each_held")
    )
    return select(each.c.id).select_from(held.join(each, true())).limit(BACKLOG_PER_QUEUE).subquery()


def limits_in_use() -> bool:
    """Whether any queue is paused or limited (`hints`): a hint for waking claims and for which
    part of a claim runs first, never what a claim may take."""
    return hints().limits_in_use


def limits_changed() -> None:
    """A queue's limits or pause changed in this process: `hints` reads again."""
    global _hints_seen
    _hints_seen = (float("-inf"), FlowHints(False, False))
