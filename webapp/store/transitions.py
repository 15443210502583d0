"""The statements of the job state machine: the only code that writes a job's status
(its vocabulary, the statuses and edges, is `webapp.domain.statuses`).

Every change is one conditional UPDATE (id, allowed current statuses, and for
worker calls the lease token) plus one event row, written in the caller's
transaction. When nothing matched, the caller learns why: the job does not
exist, its lease is gone, or its current status refuses the move.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ClauseElement,
    Column,
    ColumnElement,
    Executable,
    FromClause,
    Insert,
    Integer,
    Select,
    Update,
    UpdateBase,
    and_,
    any_,
    bindparam,
    case,
    column,
    func,
    insert,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import aliased
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.selectable import NamedFromClause

from ..domain.actors import WORKER, WORKER_PREFIX
from ..domain.event_kinds import EventKind
from ..domain.queues import DEFAULT_QUEUE
from ..domain.statuses import (
    EDGES,
    FINISHED,
    LIVE,
    Edge,
    JobNotFound,
    LeaseLost,
    Status,
    TransitionRefused,
)
from ..domain.timeutil import utcnow
from . import audit_rows, flow, leases, moves, unique, wakeup
from .dialects import on_postgresql
from .extensions import db
from .models import Job, JobAttempt, JobEvent, JobRow
from .status_sql import names_in_the_text, status_is
from .transaction import each_statement_commits, take_the_write_lock

# The tables behind the models: the state machine writes them with Core statements.
_JOBS = Job.__table__
_ATTEMPTS = JobAttempt.__table__
_EVENTS = JobEvent.__table__


def record_event(
    job_id: int,
    *,
    kind: str,
    actor: str,
    at: datetime,
    action: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    attempt: int | None = None,
    reason: str | None = None,
    data: Any = None,
) -> None:
    """Append one event row (a step, a note) in the caller's transaction.

    A plain INSERT: events are never read back as objects in the transaction
    that writes them, so they skip the ORM's unit of work. Status events are
    written by `transition`, `claim` and `create` inside their own statements.
    """
    db.session.execute(
        insert(_EVENTS).values(
            job_id=job_id,
            kind=kind,
            actor=actor,
            at=at,
            action=action,
            from_status=from_status,
            to_status=to_status,
            attempt=attempt,
            reason=reason,
            data=data,
        )
    )


def why_refused(job_id: int, edge: Edge, lease_token: str | None) -> TransitionRefused:
    row = db.session.execute(select(Job.status, Job.lease_token).where(Job.id == job_id)).one_or_none()
    if row is None:
        raise JobNotFound(job_id)
    status, current_token = row
    if lease_token is not None and (current_token != lease_token or status not in LIVE):
        return LeaseLost(job_id, edge.name, status)
    return TransitionRefused(job_id, edge.name, status)


# --- statements ------------------------------------------------------------------
# A transition is an UPDATE of the job, an UPDATE of its current attempt, an
# INSERT of its event and, for the transitions that raise a webhook event, the
# outbox's INSERTs. On PostgreSQL that is one statement: the job's UPDATE is a
# CTE whose RETURNING rows feed the others as further CTEs. SQLite has no DML
# in CTEs, so there the follow-ups run as separate statements that read the moved
# rows by id. Each statement shape is built once and reused with bound
# parameters, so SQLAlchemy compiles it once per process rather than per call.

FollowUp = Callable[[NamedFromClause], UpdateBase]  # an INSERT or UPDATE, usable as a CTE
RowsActor = Callable[[FromClause], ColumnElement[str]]


@dataclass(frozen=True)
class _Plan:
    moved: Executable  # returns the moved jobs: as Job objects, or as rows (`_plan`'s `as_rows`)
    followups: tuple[Executable, ...]  # SQLite only: run with the moved ids as `cas_ids`


def _param(name: str, column: Column[Any]) -> BindParameter[Any]:
    # Bound parameters are named `cas_…`, `set_…` or `attempt_…`: SQLAlchemy
    # reserves the names of the updated table's columns for itself.
    return bindparam(name, type_=column.type)


def lease_holder(rows: FromClause) -> ColumnElement[str]:
    """`actors.worker_actor` in SQL, from the worker the moved row names (no extra read)."""
    return func.coalesce(literal(WORKER_PREFIX) + rows.c.worker_id, literal(WORKER))


def _plan(
    moved: Update | Insert,
    followups: list[FollowUp],
    postgresql: bool,
    carried: tuple[ColumnElement[Any], ...] = (),
    wakes: bool = False,
    as_rows: bool = False,
    turns_missed: ColumnElement[int] | None = None,
) -> _Plan:
    """`carried`: further columns the moved rows bring along for the follow-ups (PostgreSQL).
    `wakes`: the statement also notifies waiting claims when a moved row freed a limited
    queue's slot (`flow.freed_slot_notice`, PostgreSQL): a SELECT, so the moved rows are
    joined to it (one row or none) to make PostgreSQL run it. `as_rows`: the moved jobs
    come back as `JobRow`s (run it with `_run_rows`), else as Job objects (`_run`).
    `turns_missed` (PostgreSQL, a claim taking turns in its statement): the statement also
    answers how many limited queues' turns it missed, on one row with no job when it moved
    none (run it with `_run_turns`)."""
    if postgresql:
        rows: NamedFromClause = moved.returning(*_JOBS.c, *carried).cte("moved")
        statement = (
            select(*(rows.c[column.name] for column in _JOBS.c))
            if as_rows
            else select(aliased(Job, rows, adapt_on_names=True))
        )
        if turns_missed is not None:
            tally = select(turns_missed.label("turns_missed")).subquery("tally")
            statement = statement.add_columns(tally.c.turns_missed).select_from(tally.outerjoin(rows, true()))
        if wakes:
            notice = flow.freed_slot_notice(rows).cte("freed_slot_notice")
            statement = statement.outerjoin(notice, true())
        for number, followup in enumerate(followups):
            statement = statement.add_cte(followup(rows).cte(f"followup_{number}"))
        return _Plan(statement, ())
    rows = select(_JOBS).where(_JOBS.c.id.in_(bindparam("cas_ids", expanding=True))).subquery("moved")
    returned = moved.returning(*_JOBS.c)
    return _Plan(
        returned if as_rows else select(Job).from_statement(returned),
        tuple(followup(rows) for followup in followups),
    )


def _run(plan: _Plan, params: dict[str, Any]) -> list[Job]:
    jobs = list(db.session.scalars(plan.moved, params, execution_options={"populate_existing": True}))
    _follow_up(plan, params, [job.id for job in jobs])
    return jobs


def _run_rows(plan: _Plan, params: dict[str, Any]) -> list[JobRow]:
    """`_run` of a plan made `as_rows`. A Job object of a moved job the session already holds
    (read earlier in the same unit of work: a batch of reports) is expired, so reading it
    again shows the move, as `_run`'s objects show it."""
    moved = list(db.session.execute(plan.moved, params))
    ids = [row.id for row in moved]
    _follow_up(plan, params, ids)
    _expire_loaded(ids)
    return moved


def _run_turns(plan: _Plan, params: dict[str, Any]) -> tuple[list[JobRow], int]:
    """`_run_rows` of a plan with `turns_missed`: the moved jobs, and how many turns it missed."""
    answer = list(db.session.execute(plan.moved, params))
    moved = [row for row in answer if row.id is not None]
    _expire_loaded([row.id for row in moved])
    return moved, answer[0].turns_missed


def _expire_loaded(ids: list[int]) -> None:
    held = db.session.identity_map
    if held:
        for job_id in ids:
            loaded = held.get(identity_key(Job, job_id))
            if loaded is not None:
                db.session.expire(loaded)


def _follow_up(plan: _Plan, params: dict[str, Any], moved_ids: list[int]) -> None:
    if moved_ids and plan.followups:
        with_ids = {**params, "cas_ids": moved_ids}
        for statement in plan.followups:
            db.session.execute(statement, with_ids)


_EVENT_COLUMNS = ["job_id", "kind", "actor", "at", "action", "from_status", "to_status", "attempt", "reason", "data"]


def _event_rows(
    rows: FromClause, actor: ColumnElement[str], action: str, from_status: Status, to_status: Status
) -> Select[Any]:
    return select(
        rows.c.id.label("job_id"),
        literal(str(EventKind.STATUS)).label("kind"),
        actor.label("actor"),
        _param("cas_now", _EVENTS.c.at).label("at"),
        literal(action).label("action"),
        literal(str(from_status)).label("from_status"),
        literal(str(to_status)).label("to_status"),
        func.nullif(rows.c.attempt, 0).label("attempt"),
        _param("cas_reason", _EVENTS.c.reason).label("reason"),
        _param("cas_event_data", _EVENTS.c.data).label("data"),
    )


def _status_events(
    rows: FromClause, actor: ColumnElement[str], action: str, from_status: Status, to_status: Status
) -> UpdateBase:
    """One status event per moved row, its reason and data from `cas_reason` and `cas_event_data`."""
    return insert(_EVENTS).from_select(_EVENT_COLUMNS, _event_rows(rows, actor, action, from_status, to_status))


AttemptValues = Callable[[FromClause], dict[str, Any]]  # the current attempt's new values, from the moved rows


def _followups(
    edge: Edge,
    expected: Status,
    attempt_values: AttemptValues | None,
    rows_actor: RowsActor | None,
    postgresql: bool,
    notifies: bool,
) -> list[FollowUp]:
    """What a transition writes besides the job: its attempt's row, its event, its notification."""

    def update_attempt(rows: FromClause) -> UpdateBase:
        assert attempt_values is not None
        return (
            update(_ATTEMPTS)
            .where(_ATTEMPTS.c.job_id == rows.c.id, _ATTEMPTS.c.number == rows.c.attempt)
            .values(attempt_values(rows))
        )

    def record_transition(rows: FromClause) -> UpdateBase:
        actor = rows_actor(rows) if rows_actor else _param("cas_actor", _EVENTS.c.actor)
        return _status_events(rows, actor, edge.name, expected, edge.target)

    def queue_notification(rows: NamedFromClause) -> UpdateBase:
        outbox = moves.outbox()
        assert outbox is not None  # `notifies` is set only when an outbox named an event
        return outbox.followup(rows, _param("cas_now", _JOBS.c.updated_at))

    # An attempt row exists only once the job was claimed.
    closes_attempt = attempt_values is not None and expected in LIVE
    followups: list[FollowUp] = [update_attempt, record_transition] if closes_attempt else [record_transition]
    if notifies and postgresql:  # SQLite: `transition` calls the outbox after the statements
        followups.append(queue_notification)
    return followups


def _shared_attempt_values(attempt_columns: tuple[str, ...]) -> AttemptValues | None:
    if not attempt_columns:
        return None
    return lambda _rows: {name: _param(f"attempt_{name}", _ATTEMPTS.c[name]) for name in attempt_columns}


def _transition_plan(
    edge: Edge,
    expected: Status,
    set_values: dict[str, Any],
    attempt_columns: tuple[str, ...],
    fenced: bool,
    rows_actor: RowsActor | None,
    postgresql: bool,
    notifies: bool,
    wakes: bool,
    conditions: tuple[ColumnElement[bool], ...] = (),
) -> _Plan:
    moved = (
        update(_JOBS)
        .where(_JOBS.c.id == bindparam("cas_job_id"), _JOBS.c.status == expected, *conditions)
        .values(status=edge.target, updated_at=_param("cas_now", _JOBS.c.updated_at), **set_values)
    )
    if fenced:
        moved = moved.where(_JOBS.c.lease_token == _param("cas_lease_token", _JOBS.c.lease_token))
    attempt_values = _shared_attempt_values(attempt_columns)
    followups = _followups(edge, expected, attempt_values, rows_actor, postgresql, notifies)
    return _plan(moved, followups, postgresql, wakes=wakes)


@lru_cache(maxsize=256)
def _cached_transition_plan(
    action: str,
    expected: Status,
    value_columns: tuple[str, ...],
    attempt_columns: tuple[str, ...],
    fenced: bool,
    rows_actor: RowsActor | None,
    postgresql: bool,
    notifies: bool,
    wakes: bool,
) -> _Plan:
    set_values = {name: _param(f"set_{name}", _JOBS.c[name]) for name in value_columns}
    return _transition_plan(
        EDGES[action], expected, set_values, attempt_columns, fenced, rows_actor, postgresql, notifies, wakes
    )


def _frees_slot(expected: Status, target: Status, postgresql: bool) -> bool:
    """A live job finishing may free a limited queue's slot: while limits are in use, the
    statement on PostgreSQL then wakes waiting claims itself (`flow.freed_slot_notice`)."""
    return postgresql and expected in LIVE and target in FINISHED and flow.limits_in_use()


def transition(
    job_id: int,
    action: str,
    *,
    actor: str | RowsActor,
    reason: str | None = None,
    lease_token: str | None = None,
    conditions: Iterable[ColumnElement[bool]] = (),
    values: dict[str, Any] | None = None,
    attempt_values: dict[str, Any] | None = None,
    event_data: Any = None,
    now: datetime | None = None,
) -> Job:
    """Apply one transition as a compare-and-set and record its event.

    `conditions` narrow the match further (the monitor's heartbeat cut-off);
    `attempt_values` close or update the current attempt's row when the job
    comes from a live status. `actor` is a name, or a function giving it in SQL
    from the moved row (`lease_holder`), so a worker's name comes from the row
    it holds rather than from an extra read. Runs in the caller's transaction;
    the caller commits or rolls back.
    """
    edge = EDGES[action]
    now = now or utcnow()
    values = values or {}
    attempt_values = attempt_values or {}
    conditions = tuple(conditions)
    fenced = lease_token is not None
    rows_actor = None if isinstance(actor, str) else actor
    postgresql = on_postgresql()
    plain_values = {name: value for name, value in values.items() if not isinstance(value, ClauseElement)}
    params = {
        "cas_job_id": job_id,
        "cas_now": now,
        "cas_reason": reason,
        "cas_event_data": event_data,
        "cas_lease_token": lease_token,
        "cas_actor": actor if rows_actor is None else None,
        **{f"set_{name}": value for name, value in plain_values.items()},
        **{f"attempt_{name}": value for name, value in attempt_values.items()},
    }
    attempt_columns = tuple(attempt_values)
    # A multi-source edge reads the current status first so the event can name it,
    # then updates only if the status is still the one read.
    for _ in range(5):
        if len(edge.sources) == 1:
            (expected,) = edge.sources
        else:
            current = db.session.execute(select(Job.status).where(Job.id == job_id)).scalar()
            if current is None:
                raise JobNotFound(job_id)
            if current not in edge.sources:
                raise why_refused(job_id, edge, lease_token)
            expected = Status(current)
        # Webhooks (an outbox): the notification commits or rolls back with this transition.
        event = _event(action, expected, edge.target, actor)
        if event is not None:
            params.update(_outbox_params(event))
        wakes = _frees_slot(expected, edge.target, postgresql)
        if wakes:
            params["cas_wake_payload"] = wakeup.notification_payload()
        if conditions or len(plain_values) < len(values):
            # A one-off shape: the monitor's cut-offs and SQL expressions are rare.
            set_values = {
                name: value if isinstance(value, ClauseElement) else _param(f"set_{name}", _JOBS.c[name])
                for name, value in values.items()
            }
            plan = _transition_plan(
                edge,
                expected,
                set_values,
                attempt_columns,
                fenced,
                rows_actor,
                postgresql,
                event is not None,
                wakes,
                conditions,
            )
        else:
            plan = _cached_transition_plan(
                action,
                expected,
                tuple(values),
                attempt_columns,
                fenced,
                rows_actor,
                postgresql,
                event is not None,
                wakes,
            )
        moved = _run(plan, params)
        if moved:
            break
        if len(edge.sources) == 1 or lease_token or conditions:
            raise why_refused(job_id, edge, lease_token)
        # The status moved between our read and our write: read it again.
    else:
        raise why_refused(job_id, edge, lease_token)
    moves.announce(action, edge.target, moved)
    outbox = moves.outbox()
    if event is not None and outbox is not None and not postgresql:  # PostgreSQL wrote it in the statement above
        outbox.write(event, moved[0], now)
    return moved[0]


def _event(action: str, from_status: Status, to_status: Status, actor: object) -> str | None:
    """The notification the outbox writes for this transition, if there is an outbox and an event."""
    outbox = moves.outbox()
    return outbox.event(action, from_status, to_status, actor) if outbox is not None else None


def _outbox_params(event: str) -> dict[str, Any]:
    outbox = moves.outbox()
    assert outbox is not None
    return outbox.params(event)


@dataclass(frozen=True)
class HeldJob:
    """One job of a worker's batch: the lease token it holds and the values of its own row."""

    job_id: int
    lease_token: str
    values: dict[str, Any] = field(default_factory=dict)  # job columns
    attempt_values: dict[str, Any] = field(default_factory=dict)  # attempt columns; None keeps the stored value


Outcome = Job | JobRow | TransitionRefused | JobNotFound


def transition_held(
    action: str,
    held: list[HeldJob],
    *,
    values: dict[str, Any] | None = None,
    attempt_values: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> list[Outcome]:
    """`transition` for many jobs a worker holds, each fenced by its own lease token.

    For a worker's coalesced reports: on PostgreSQL one statement moves every job
    whose token and status still match (an UPDATE … FROM the batch's rows), with
    their attempts, events and notifications as in `transition`; SQLite applies them
    one by one. `values` and `attempt_values` are shared; each `HeldJob` brings its
    own (every item the same keys). The answer is in the order given: the moved job,
    or why it was refused (nothing of it was written). Single-source edges only.
    """
    edge = EDGES[action]
    (expected,) = edge.sources
    now = now or utcnow()
    values = values or {}
    attempt_values = attempt_values or {}
    if not held:
        return []
    if not on_postgresql() or len(held) == 1:
        return [_transition_one(action, item, values, attempt_values, now) for item in held]
    row_columns, attempt_row_columns = tuple(held[0].values), tuple(held[0].attempt_values)
    if any((tuple(item.values), tuple(item.attempt_values)) != (row_columns, attempt_row_columns) for item in held):
        raise ValueError("every held job brings values for the same columns")
    if len({item.job_id for item in held}) < len(held):
        raise ValueError("a job appears twice in one transition_held")
    event = _event(action, expected, edge.target, lease_holder)
    wakes = _frees_slot(expected, edge.target, True)
    plan = _held_plan(
        action,
        expected,
        tuple(values),
        tuple(attempt_values),
        row_columns,
        attempt_row_columns,
        event is not None,
        wakes,
    )
    rows = [
        {
            "job_id": item.job_id,
            "lease_token": item.lease_token,
            **{f"row_{name}": value for name, value in item.values.items()},
            **{f"row_attempt_{name}": value for name, value in item.attempt_values.items()},
        }
        # In id order: two batches naming the same jobs (a zombie's and its successor's) then
        # tend to meet the rows in one order and wait for each other rather than deadlock.
        for item in sorted(held, key=lambda item: item.job_id)
    ]
    params = {
        "cas_items": rows,
        "cas_now": now,
        "cas_reason": None,
        "cas_event_data": None,
        **{f"set_{name}": value for name, value in values.items()},
        **{f"attempt_{name}": value for name, value in attempt_values.items()},
        **(_outbox_params(event) if event is not None else {}),
        **({"cas_wake_payload": wakeup.notification_payload()} if wakes else {}),
    }
    moved = {job.id: job for job in _run_rows(plan, params)}
    if moved:
        moves.announce(action, edge.target, list(moved.values()))
    outcomes: list[Outcome] = []
    for item in held:
        if item.job_id in moved:
            outcomes.append(moved[item.job_id])
            continue
        try:
            outcomes.append(why_refused(item.job_id, edge, item.lease_token))
        except JobNotFound as missing:
            outcomes.append(missing)
    return outcomes


def _transition_one(
    action: str, item: HeldJob, values: dict[str, Any], attempt_values: dict[str, Any], now: datetime
) -> Outcome:
    kept = {name: value for name, value in item.attempt_values.items() if value is not None}
    try:
        return transition(
            item.job_id,
            action,
            actor=lease_holder,
            lease_token=item.lease_token,
            values={**values, **item.values},
            attempt_values={**attempt_values, **kept},
            now=now,
        )
    except (TransitionRefused, JobNotFound) as refusal:
        return refusal


@lru_cache(maxsize=32)
def _held_plan(
    action: str,
    expected: Status,
    value_columns: tuple[str, ...],
    attempt_columns: tuple[str, ...],
    row_columns: tuple[str, ...],
    attempt_row_columns: tuple[str, ...],
    notifies: bool,
    wakes: bool,
) -> _Plan:
    """PostgreSQL: the batch's rows arrive as one JSONB array (`cas_items`) read by
    jsonb_to_recordset, so the statement's shape does not depend on the batch's size."""
    edge = EDGES[action]
    items = (
        func.jsonb_to_recordset(bindparam("cas_items", type_=JSONB))
        .table_valued(
            column("job_id", _JOBS.c.id.type),
            column("lease_token", _JOBS.c.lease_token.type),
            *(column(f"row_{name}", _JOBS.c[name].type) for name in row_columns),
            *(column(f"row_attempt_{name}", _ATTEMPTS.c[name].type) for name in attempt_row_columns),
        )
        .render_derived(name="items", with_types=True)
    )
    moved = (
        update(_JOBS)
        .where(_JOBS.c.id == items.c.job_id, _JOBS.c.lease_token == items.c.lease_token, _JOBS.c.status == expected)
        .values(
            status=edge.target,
            updated_at=_param("cas_now", _JOBS.c.updated_at),
            **{name: _param(f"set_{name}", _JOBS.c[name]) for name in value_columns},
            **{name: items.c[f"row_{name}"] for name in row_columns},
        )
    )

    def attempt_values(rows: FromClause) -> dict[str, Any]:
        return {
            **{name: _param(f"attempt_{name}", _ATTEMPTS.c[name]) for name in attempt_columns},
            **{name: func.coalesce(rows.c[f"row_attempt_{name}"], _ATTEMPTS.c[name]) for name in attempt_row_columns},
        }

    has_attempt_values = bool(attempt_columns or attempt_row_columns)
    followups = _followups(edge, expected, attempt_values if has_attempt_values else None, lease_holder, True, notifies)
    # The attempts' own values ride along in the moved rows, for the attempts' UPDATE.
    carried = tuple(items.c[f"row_attempt_{name}"] for name in attempt_row_columns)
    return _plan(moved, followups, True, carried, wakes, as_rows=True)


def create(
    specs: list[dict[str, Any]],
    *,
    actor: str,
    now: datetime | None = None,
    audit_entry: dict[str, Any] | None = None,
) -> list[Job]:
    """Insert new jobs: `pending` when held, `queued` otherwise (the "(new)" edge).

    One job (every create request): its INSERT … RETURNING and its event in one cached Core
    statement on PostgreSQL (the event a CTE of it), two on SQLite (`_create_plan`). A batch:
    one multi-row INSERT … RETURNING through the ORM's bulk path, which skips the unit of
    work (two thirds of a large batch's time) and keeps the batch's order, then one
    INSERT … SELECT of their events.

    `audit_entry` (webapp.jobs.audit.entry): the request's audit row, written with the jobs
    in the caller's transaction; for one job on PostgreSQL a CTE of its statement.
    """
    if not specs:
        return []  # an INSERT with no rows would insert one row of defaults
    now = now or utcnow()
    rows = [_new_row(spec, now) for spec in specs]
    if len(rows) == 1:
        (row,) = rows
        postgresql = on_postgresql()
        params = {**{f"new_{name}": value for name, value in row.items()}, "cas_now": now, "cas_actor": actor}
        audited_here = False
        if postgresql:  # the statement's own NOTIFY (SQLite's plan has none)
            params["cas_wake_payload"] = wakeup.notification_payload({(row["type"], row["queue"]): 1})
            if audit_entry is not None:
                params.update(audit_rows.bound(audit_entry))
                audited_here = True
        jobs = _run(_create_plan(tuple(row), postgresql, audited_here), params)
        _announce_creates(jobs, notified=postgresql)
    else:
        audited_here = False
        jobs = list(db.session.scalars(insert(Job).returning(Job, sort_by_parameter_order=True), rows))
        record_creates(jobs, actor=actor, now=now)
    if audit_entry is not None and not audited_here:
        db.session.execute(audit_rows.INSERT, audit_entry)
    return jobs


@lru_cache(maxsize=32)
def _create_plan(columns: tuple[str, ...], postgresql: bool, audited: bool = False) -> _Plan:
    """One new job (its values bound as `new_<column>`) and its "create" status event; on
    PostgreSQL one statement that also notifies other processes' waiting claims of a queued
    job (payload `cas_wake_payload`), so a pickup waits for one round trip, not three, and
    when `audited` writes the request's audit entry (`audit_<column>`, webapp.store.audit_rows)."""
    inserted = insert(_JOBS).values({name: _param(f"new_{name}", _JOBS.c[name]) for name in columns})

    def record_create(rows: FromClause) -> UpdateBase:
        return insert(_EVENTS).from_select(
            ["job_id", "kind", "actor", "at", "action", "to_status"],
            select(
                rows.c.id,
                literal(str(EventKind.STATUS)),
                _param("cas_actor", _EVENTS.c.actor),
                _param("cas_now", _EVENTS.c.at),
                literal("create"),
                rows.c.status,
            ),
        )

    if not postgresql:
        return _plan(inserted, [record_create], postgresql)
    rows = inserted.returning(*_JOBS.c).cte("moved")
    notice = (
        select(func.pg_notify(literal(wakeup.CHANNEL), bindparam("cas_wake_payload", type_=db.String)))
        .where(rows.c.status == Status.QUEUED)
        .cte("claimable_notice")
    )
    statement = (
        select(aliased(Job, rows, adapt_on_names=True))
        .outerjoin(notice, true())  # a SELECT CTE runs only when the statement reads it
        .add_cte(record_create(rows).cte("create_event"))
    )
    if audited:
        statement = statement.add_cte(audit_rows.written_with())
    return _Plan(statement, ())


def _new_row(spec: dict[str, Any], now: datetime) -> dict[str, Any]:
    spec = dict(spec)
    hold = spec.pop("hold", False)
    first_run = _first_run(now, spec.pop("delay_s", None), spec.pop("run_after", None))
    # Every row carries the same keys, so the batch stays one statement.
    return {
        "payload": None,
        "priority": 0,
        "timeout_s": None,
        "queue": DEFAULT_QUEUE,
        "concurrency_key": None,
        "unique_key": None,
        **spec,
        "status": Status.PENDING if hold else Status.QUEUED,
        "created_at": now,
        "updated_at": now,
        "run_after": first_run,
        "attempt": 0,
        "cancel_requested": False,
    }


def _first_run(now: datetime, delay_s: float | None, run_after: datetime | None) -> datetime:
    """When a new job may first be claimed: `delay_s` after the create's own clock, or at
    `run_after` (any time zone), never before the create (a past time would read as a job
    waiting since then)."""
    if delay_s:
        return now + timedelta(seconds=delay_s)
    if run_after is not None and run_after > now:  # compared before converting: 0001-01-01+14:00 has no UTC
        return run_after.astimezone(UTC)
    return now


def create_unique(
    spec: dict[str, Any], *, actor: str, unique_for_s: float | None = None, now: datetime | None = None
) -> tuple[Job, bool]:
    """`create` for one job with a `unique_key`: (the new job, False), or (the job holding
    the key, True) and nothing written (`webapp.store.unique`)."""
    now = now or utcnow()
    job, duplicate = unique.insert_unique(_new_row(spec, now), unique_for_s, now)
    if not duplicate:
        record_creates([job], actor=actor, now=now)
    return job, duplicate


def record_creates(jobs: list[Job], *, actor: str, now: datetime) -> None:
    """The "create" status events of new jobs (one INSERT … SELECT) and their announcement."""
    if not jobs:
        return
    db.session.execute(
        insert(_EVENTS).from_select(
            ["job_id", "kind", "actor", "at", "action", "to_status"],
            select(
                _JOBS.c.id,
                literal(str(EventKind.STATUS)),
                literal(actor),
                literal(now, _EVENTS.c.at.type),
                literal("create"),
                _JOBS.c.status,
            ).where(_JOBS.c.id.in_([job.id for job in jobs])),
        )
    )
    _announce_creates(jobs)


def _announce_creates(jobs: list[Job], *, notified: bool = False) -> None:
    for status in (Status.PENDING, Status.QUEUED):
        created = [job for job in jobs if job.status == status]
        if created:
            moves.announce("create", status, created, notified=notified)


def _new_token(postgresql: bool) -> ColumnElement[str]:
    if postgresql:
        return func.replace(func.cast(func.gen_random_uuid(), db.String), "-", "")
    return func.lower(func.hex(func.randomblob(16)))


def _edge_ends(action: str) -> tuple[Status, Status]:
    """The one status an edge with a single source leaves, and the one it reaches."""
    edge = EDGES[action]
    (source,) = edge.sources
    return source, edge.target


class LimitedPart(enum.Enum):
    """Which limited queues a claim plan takes jobs of (webapp.store.flow)."""

    NONE = "none"  # none: the fast part alone, queues with no limit and no pause
    IN_STATEMENT = "in_statement"  # PostgreSQL: those whose turns the claim takes itself
    HELD = "held"  # those named in `cas_limited`, held before the claim (SQLite: `held_count` of them)


class FastPart(enum.Enum):
    """How a claim plan takes the jobs of queues with no limit and no pause (webapp.store.flow)."""

    NONE = "none"  # it does not: the limited part alone
    SCAN = "scan"  # one scan of the claim order
    PER_QUEUE = "per_queue"  # PostgreSQL: queue by queue (`flow.fast_candidates_per_queue`)
    CHOSEN = "chosen"  # SQLite: the jobs named in `cas_chosen`, read under the write lock


@lru_cache(maxsize=64)
def _claim_plan(
    by_type: bool,
    postgresql: bool,
    lease_types: tuple[str, ...],
    by_queue: bool = False,
    limited: LimitedPart = LimitedPart.NONE,
    rate_window: bool = True,
    fast: FastPart = FastPart.SCAN,
    held_count: int | None = None,
) -> _Plan:
    """A claim of the fast part, of the limited part, or of both in one claim order.

    `rate_window`: a limited claim records its starts and prunes old ones (a follow-up each:
    CTEs of the statement on PostgreSQL, statements of their own on SQLite), left out by a claim
    of held queues none of which has a rate limit. `fast`: while paused or limited queues hold
    a backlog (`flow.hints`), the fast part reads queue by queue, as one scan of the claim
    order would pass over every job of that backlog."""
    now = _param("cas_now", _JOBS.c.updated_at)
    # The batch's size is written into the statement's text, as the status is (status_sql): a
    # generic plan with a LIMIT it cannot see read every queued job and sorted them
    # (tests/test_generic_plans.py). The limited part needs it there too (flow.limited_candidates).
    batch_size: BindParameter[int] = bindparam("cas_batch_size", type_=Integer, literal_execute=True)
    job_conditions = [
        status_is(_JOBS.c.status, Status.QUEUED),
        _JOBS.c.run_after <= now,
        leases.claimable(_JOBS.c.lease_expires_at, now),  # one live copy: see webapp.store.leases
    ]
    if by_type:
        job_conditions.append(_JOBS.c.type.in_(names_in_the_text("cas_types")))
    # Each part's candidates as (id, priority), the fast part's locked on PostgreSQL; with both
    # parts, the claim takes the first of them all in claim order.
    parts: list[Select[Any]] = []
    if fast is FastPart.SCAN:
        scan = (
            select(_JOBS.c.id, _JOBS.c.priority)
            .where(*job_conditions, flow.unrestricted_job())
            .order_by(_JOBS.c.priority.desc(), _JOBS.c.id)
            .limit(batch_size)
        )
        if by_queue:
            scan = scan.where(_JOBS.c.queue.in_(names_in_the_text("cas_queues")))
        if postgresql:
            picked = scan.with_for_update(skip_locked=True, of=_JOBS).cte("picked")
            scan = select(picked.c.id, picked.c.priority)
        elif limited is not LimitedPart.NONE:
            scan = select(scan.subquery("fast"))  # a member of a compound SELECT takes no LIMIT of its own
        parts.append(scan)
    elif fast is FastPart.PER_QUEUE:
        picked = flow.fast_candidates_per_queue(job_conditions, by_queue, batch_size).cte("picked")
        parts.append(select(picked.c.id, picked.c.priority))
    elif fast is FastPart.CHOSEN:
        parts.append(
            select(_JOBS.c.id, _JOBS.c.priority).where(_JOBS.c.id.in_(bindparam("cas_chosen", expanding=True)))
        )
    turns_missed = None
    if limited is not LimitedPart.NONE:
        conditions = [leases.claimable(_JOBS.c.lease_expires_at, now)]  # one live copy, in the limited part too
        if by_type:
            conditions.append(_JOBS.c.type.in_(names_in_the_text("cas_types")))
        if limited is LimitedPart.IN_STATEMENT:
            held, turns_missed = flow.turns_in_statement(now, by_type, by_queue)
        else:
            held = flow.held_by_name(held_count)
        limited_jobs = flow.limited_candidates(now, conditions, held).subquery("limited")
        if postgresql:
            # The limited candidates are ranked (window functions, which FOR UPDATE cannot lock):
            # an outer select of them locks them, and keeps their status to check.
            locked = (
                select(_JOBS.c.id, _JOBS.c.priority, _JOBS.c.status)
                .where(_JOBS.c.id.in_(select(limited_jobs.c.id)))
                .with_for_update(skip_locked=True, of=_JOBS)
                .cte("limited_picked")
            )
            parts.append(select(locked.c.id, locked.c.priority).where(locked.c.status == Status.QUEUED))
        else:
            parts.append(select(limited_jobs))
    ids = _first_in_claim_order(parts, batch_size)
    if postgresql:
        # A CTE is evaluated once, so the locked rows are exactly the rows updated, and they are
        # updated by primary key from an array of their ids. FOR UPDATE hands back a locked row
        # as its newest version (READ COMMITTED follows a row another claimer changed since this
        # statement's snapshot), so a picked row still queued is queued and ours to the commit,
        # and the UPDATE needs no condition of its own: the fast part's scan checks its
        # conditions (status queued among them) again on that version, the limited part its
        # status. With both parts, the candidates of one that the other's come before stay
        # locked to the statement's end (a claim with both runs in autocommit or commits next).
        # A planner without statistics of the jobs (a new table, or one autovacuum has not
        # analyzed yet) otherwise walked the queued jobs: once per picked row when the UPDATE
        # was joined to the CTE (17,900 rows for a batch of 10 at 1,800 queued), once per claim
        # with the status in the UPDATE's condition; in the limited part while every other
        # claimer of the queue waited for its turn (tests/test_flow_claim_cost.py).
        chosen = _JOBS.c.id == any_(func.array(ids.scalar_subquery()))
    else:
        chosen = and_(_JOBS.c.id.in_(ids), status_is(_JOBS.c.status, Status.QUEUED))
    # `cas_start`: the claim starts the jobs too (queued → claimed → running in this one
    # statement, both events recorded), so the worker runs them without a start report's
    # round trip. A bound parameter, not a plan of its own: every claim plan can start.
    starts = bindparam("cas_start", type_=db.Boolean)
    moved = (
        update(_JOBS)
        .where(chosen)
        .values(
            status=case((starts, literal(str(Status.RUNNING))), else_=literal(str(Status.CLAIMED))),
            lease_token=_new_token(postgresql),
            attempt=_JOBS.c.attempt + 1,
            worker_id=_param("cas_worker_id", _JOBS.c.worker_id),
            claimed_at=now,
            heartbeat_at=now,
            lease_expires_at=leases.expiry_sql(_JOBS.c.type, lease_types),
            started_at=case((starts, now), else_=None),
            progress=None,
            stage=None,
            current_step=None,
            cancel_requested=False,
            updated_at=now,
        )
    )

    def open_attempts(rows: FromClause) -> UpdateBase:
        return insert(_ATTEMPTS).from_select(
            ["job_id", "number", "worker_id", "claimed_at", "started_at"],
            select(rows.c.id, rows.c.attempt, rows.c.worker_id, rows.c.claimed_at, rows.c.started_at),
        )

    def record_claims(rows: FromClause) -> UpdateBase:
        """The claim's event, and the start's after it for the jobs the claim started (one
        INSERT, in that order, so the events keep the state machine's two edges)."""
        actor = lease_holder(rows)
        claims = _event_rows(rows, actor, "claim", *_edge_ends("claim")).add_columns(literal(0).label("step"))
        started = (
            _event_rows(rows, actor, "start", *_edge_ends("start"))
            .add_columns(literal(1).label("step"))
            .where(rows.c.status == Status.RUNNING)
        )
        both = union_all(claims, started).subquery("claim_events")
        ordered = select(*(both.c[name] for name in _EVENT_COLUMNS)).order_by(both.c.job_id, both.c.step)
        return insert(_EVENTS).from_select(_EVENT_COLUMNS, ordered)

    followups: list[FollowUp] = [open_attempts, record_claims]
    if limited is not LimitedPart.NONE and rate_window:
        followups += [flow.record_starts, flow.prune_starts]  # the rate limit's window
    return _plan(moved, followups, postgresql, as_rows=True, turns_missed=turns_missed)


def _first_in_claim_order(parts: list[Select[Any]], batch_size: BindParameter[int]) -> Select[Any]:
    """The ids of a claim's candidates (each part: id, priority): a part's alone, or the first
    `batch_size` of both parts in claim order."""
    if len(parts) == 1:
        return parts[0].with_only_columns(parts[0].selected_columns[0])
    both = union_all(*parts).subquery("both_parts")
    return select(both.c.id).order_by(both.c.priority.desc(), both.c.id).limit(batch_size)


def claim(
    worker_id: str,
    *,
    types: list[str] | None = None,
    queues: list[str] | None = None,
    batch_size: int = 1,
    start: bool = False,
    now: datetime | None = None,
) -> list[JobRow]:
    """Atomically hand up to `batch_size` due queued jobs to one worker; with `start`, running
    (the claim and the start in one statement: the worker needs no start report before it runs).

    One UPDATE … RETURNING: on PostgreSQL the candidates are locked with
    FOR UPDATE SKIP LOCKED so claimers never wait on or collide with each other,
    and the attempt rows and events are written by the same statement; on SQLite
    the UPDATE takes the database's single write lock before it reads.
    Each claimed job gets a fresh lease token and lease, one more attempt and an attempt
    row; a job whose previous attempt may still be live is skipped (webapp.store.leases).
    `queues` keeps to those queues (None: any). Jobs of paused or limited queues are
    claimed only while their limits have room (`webapp.store.flow`).
    """
    given_now = now
    now = now or utcnow()
    lease_types = leases.typed()
    params = {
        "cas_worker_id": worker_id,
        "cas_now": now,
        "cas_now_us": flow.epoch_microseconds(now),
        "cas_batch_size": batch_size,
        "cas_start": start,
        "cas_types": types or [],
        "cas_queues": queues or [],
        "cas_reason": None,
        "cas_event_data": None,
        **leases.expiry_params(now, lease_types),
    }
    request = _ClaimRequest(params, lease_types, types, queues, given_now)
    hints = flow.hints()
    # While paused or limited queues hold a backlog, the fast part reads its jobs queue by queue.
    fast = FastPart.SCAN
    if hints.restricted_backlog:
        fast = FastPart.PER_QUEUE if on_postgresql() else FastPart.CHOSEN
    # While limits are in use, one statement takes both parts' jobs in claim order, so a limited
    # queue with room takes its turn among the others by priority and age. Else the fast part
    # alone, and the limited part (a limit set since `flow.hints` last read) for what is left.
    if hints.limits_in_use:
        jobs = _claim_limited(request, batch_size, fast)
    else:
        jobs = _claim_fast(request, batch_size, fast)
        if len(jobs) < batch_size:
            jobs += _claim_limited(request, batch_size - len(jobs), FastPart.NONE)
    if jobs:
        moves.announce("claim", Status.CLAIMED, jobs)
        if start:
            moves.announce("start", Status.RUNNING, jobs)
    return sorted(jobs, key=lambda job: (-job.priority, job.id))


@dataclass(frozen=True)
class _ClaimRequest:
    """One claim as its parts pass it on: its statements' parameters, the types with a lease of
    their own, the claimer's types and queues (None: any), and the time a caller gave (None: now)."""

    params: dict[str, Any]
    lease_types: tuple[str, ...]
    types: list[str] | None
    queues: list[str] | None
    given_now: datetime | None

    def plan(self, limited: LimitedPart = LimitedPart.NONE, **choices: Any) -> _Plan:
        return _claim_plan(bool(self.types), on_postgresql(), self.lease_types, bool(self.queues), limited, **choices)

    def limited_params(self, room: int, now: datetime | None = None) -> dict[str, Any]:
        """The parameters of a limited claim of `room` jobs, timed `now` (read once the claimer
        holds its queues) unless a caller gave the time."""
        return _limited_params(self.params, self.given_now or now or utcnow(), room, self.lease_types)


def _claim_fast(request: _ClaimRequest, room: int, fast: FastPart) -> list[JobRow]:
    """Up to `room` jobs of the queues with no limit and no pause."""
    params = {**request.params, "cas_batch_size": room}
    if fast is FastPart.CHOSEN:
        take_the_write_lock()
        params["cas_chosen"] = _first_of_each_queue(request, params, room)
        if not params["cas_chosen"]:
            return []
    return _run_rows(request.plan(fast=fast), params)


def _first_of_each_queue(request: _ClaimRequest, params: dict[str, Any], room: int) -> list[int]:
    """SQLite, the fast part behind a backlog (FastPart.CHOSEN), under the write lock (nobody
    else claims): each unrestricted queue's first `room` jobs in claim order (an index range
    each), then the first `room` of them all (`flow.fast_candidates_per_queue` says why)."""
    queues = request.queues
    names = [name for name in db.session.scalars(flow.unrestricted_queued_queues()) if not queues or name in queues]
    first_of_queue = _first_of_queue(bool(request.types))
    candidates = [
        row
        for name in names
        for row in db.session.execute(first_of_queue, {**params, "cas_queue": name, "cas_batch_size": room})
    ]
    return [row.id for row in sorted(candidates, key=lambda row: (-row.priority, row.id))[:room]]


@lru_cache(maxsize=4)
def _first_of_queue(by_type: bool) -> Select[Any]:
    """The first `cas_batch_size` claimable jobs of the queue `cas_queue`, in claim order."""
    now = _param("cas_now", _JOBS.c.updated_at)
    statement = (
        select(_JOBS.c.id, _JOBS.c.priority)
        .where(
            _JOBS.c.queue == bindparam("cas_queue"),
            status_is(_JOBS.c.status, Status.QUEUED),
            flow.due_in_claim_order(now),
            leases.claimable(_JOBS.c.lease_expires_at, now),
        )
        .order_by(_JOBS.c.priority.desc(), _JOBS.c.id)
        .limit(bindparam("cas_batch_size"))
    )
    if by_type:
        statement = statement.where(_JOBS.c.type.in_(names_in_the_text("cas_types")))
    return statement


def _claim_limited(request: _ClaimRequest, room: int, fast: FastPart) -> list[JobRow]:
    """Up to `room` jobs of limited queues (webapp.store.flow.limited_candidates), and unless
    `fast` is NONE of the fast part's queues too, in one claim order.

    SQLite: under the write lock, it reads which limited queues hold due jobs, then one
    statement counts them and claims.
    PostgreSQL: a claim whose statements each commit (one job, `lifecycle.claim_jobs`) takes
    its turns in its own statement, and waits for the turns it missed (`flow.take_turns`) only
    when another claimer held a queue it could take from. A claim in a transaction (a batch)
    takes its turns in name order first: in a transaction the statement's turns would be held,
    in no set order, while it waited for the rest, and two claimers could wait for each other.

    The time of these claims is read once the claimer holds its queues (SQLite's write lock;
    on PostgreSQL before a statement that never waits, or after the turns it waited for):
    claimers of a queue then record their starts in the order they take turns."""
    types, queues = request.types, request.queues
    if not on_postgresql():
        take_the_write_lock()
        now = request.given_now or utcnow()
        held = flow.limited_queues_with_due_jobs(now, types, queues, with_room=True)
        return _claim_held_turns(request, room, held, fast, now)
    claimed: list[JobRow] = []
    if each_statement_commits():
        plan = request.plan(LimitedPart.IN_STATEMENT, fast=fast)
        claimed, missed = _run_turns(plan, request.limited_params(room))
        if not missed or len(claimed) == room:
            return claimed
        fast = FastPart.NONE  # the statement took the fast part's jobs it found
    held = flow.take_turns(request.given_now or utcnow(), types, queues)
    return claimed + _claim_held_turns(request, room - len(claimed), held, fast)


def _claim_held_turns(
    request: _ClaimRequest, room: int, held: list[flow.HeldQueue], fast: FastPart, now: datetime | None = None
) -> list[JobRow]:
    """Up to `room` jobs of the `held` limited queues, whose turns the claimer holds (timed `now`,
    else read now), and unless `fast` is NONE of the fast part's queues too. A claim of queues
    without a rate limit leaves out the rate window's follow-ups."""
    if not held:
        return [] if fast is FastPart.NONE else _claim_fast(request, room, fast)
    postgresql = on_postgresql()
    names = [queue.name for queue in held]
    plan = request.plan(
        LimitedPart.HELD,
        rate_window=any(queue.rate_limited for queue in held),
        fast=fast,
        held_count=None if postgresql else len(names),
    )
    claim_params = {**request.limited_params(room, now), "cas_limited": names}
    if not postgresql:
        claim_params.update(flow.held_params(names))
    if fast is FastPart.CHOSEN:
        claim_params["cas_chosen"] = _first_of_each_queue(request, claim_params, room)
    return _run_rows(plan, claim_params)


def _limited_params(params: dict[str, Any], now: datetime, room: int, lease_types: tuple[str, ...]) -> dict[str, Any]:
    return {
        **params,
        "cas_now": now,
        "cas_now_us": flow.epoch_microseconds(now),
        "cas_prune_us": flow.prune_before_us(now),
        "cas_batch_size": room,
        "cas_scan": room * flow.SCAN_PER_CLAIMED_JOB,
        **leases.expiry_params(now, lease_types),
    }
