"""Read-only questions about jobs: one job, its history, pages, counts and statistics."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, UnaryExpression, and_, case, func, literal, select, tuple_, union_all

from ..domain.event_kinds import EventKind
from ..domain.limits import COUNT_CAP
from ..domain.statuses import FINISHED, JobNotFound, Status
from ..store.dialects import on_postgresql
from ..store.extensions import db
from ..store.models import Job, JobAttempt, JobEvent
from ..store.sql_time import MICROSECOND, epoch_us, microseconds
from ..store.status_sql import status_among, status_is
from .cursors import decode_cursor, encode_cursor
from .filters import BadQuery, JobFilter
from .query_params import cursor_position

SORT_COLUMNS = {
    "id": Job.id,
    "created_at": Job.created_at,
    "updated_at": Job.updated_at,
    "priority": Job.priority,
    "type": Job.type,
    "status": Job.status,
}

# The sort orders an index led by the status serves (ix_jobs_status_id, ix_jobs_status_updated,
# ix_jobs_status_created): with one status filtered, such a page is read in (status, …) order
# (webapp.store.status_sql.status_among says why).
STATUS_LED_SORTS = frozenset({"id", "updated_at", "created_at"})

BULK_LIMIT = 1000
QUEUE_POSITION_CAP = COUNT_CAP


def get_job(job_id: int) -> Job:
    job = db.session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def queue_position(job: Job) -> int | None:
    """1-based place in the claim order, for queued jobs only, counted up to QUEUE_POSITION_CAP
    jobs ahead: a place past it reads as QUEUE_POSITION_CAP + 1 ("10,000+").

    The jobs ahead are two ranges of ix_jobs_claim (a higher priority; the same one and older),
    counted in one statement, each no further than the cap: a place deep in a backlog costs
    what the cap does (one count with an OR read every queued job: 90 ms at 900,000)."""
    if job.status != Status.QUEUED:
        return None
    queued = status_is(Job.status, Status.QUEUED)
    higher, older = (
        select(func.count()).select_from(ahead.limit(QUEUE_POSITION_CAP).subquery()).scalar_subquery()
        for ahead in (
            select(Job.id).where(queued, Job.priority > job.priority),
            select(Job.id).where(queued, Job.priority == job.priority, Job.id < job.id),
        )
    )
    ahead_in_all = db.session.execute(select(higher + older)).scalar_one()
    return min(ahead_in_all, QUEUE_POSITION_CAP) + 1


def attempts_of(job_id: int) -> list[JobAttempt]:
    return list(db.session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)))


def events_of(job_id: int) -> list[JobEvent]:
    return list(db.session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))


def steps_of(job_id: int) -> list[dict[str, Any]]:
    """Each (attempt, step) once, in the order started, with its latest state."""
    steps: dict[tuple[int | None, str | None], dict[str, Any]] = {}
    for event in db.session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == EventKind.STEP).order_by(JobEvent.id)
    ):
        data = event.data or {}
        key = (event.attempt, data.get("name"))
        step = steps.setdefault(
            key,
            {
                "name": data.get("name"),
                "attempt": event.attempt,
                "status": None,
                "started_at": None,
                "finished_at": None,
                "phase": None,
                "error": None,
                "result_attempt": None,
                "step_attempt": None,
            },
        )
        step["status"] = data.get("event")
        if data.get("event") == "started":
            step["started_at"] = event.at
        elif data.get("event") != "retrying":
            step["finished_at"] = event.at
        step["result_attempt"] = data.get("result_attempt") or step["result_attempt"]
        step["step_attempt"] = data.get("step_attempt") or step["step_attempt"]
        step["phase"] = data.get("phase") or step["phase"]
        step["error"] = data.get("error") or step["error"]
    return list(steps.values())


def list_jobs(
    job_filter: JobFilter,
    *,
    sort: str = "id",
    order: str = "desc",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Job], str | None]:
    """One keyset page of jobs and the cursor of the next page (None at the end)."""
    if sort not in SORT_COLUMNS:
        raise BadQuery("sort", f"sort must be one of {', '.join(SORT_COLUMNS)}")
    if order not in ("asc", "desc"):
        raise BadQuery("order", "order must be asc or desc")
    column = SORT_COLUMNS[sort]
    after = []
    if cursor:
        value, after_id = cursor_position(sort, *decode_cursor(cursor))
        key = tuple_(column, Job.id) if sort != "id" else Job.id
        bound = tuple_(value, after_id) if sort != "id" else after_id
        after.append(key < bound if order == "desc" else key > bound)
    ordering: list[UnaryExpression[Any]]
    if sort == "id":
        ordering = [Job.id.desc() if order == "desc" else Job.id.asc()]
    elif order == "desc":
        ordering = [column.desc(), Job.id.desc()]
    else:
        ordering = [column.asc(), Job.id.asc()]
    # One status's page is read from an index the status leads, in that index's order.
    status_first = [Job.status.desc() if order == "desc" else Job.status.asc()] if sort in STATUS_LED_SORTS else []
    if len(job_filter.statuses) > 1:
        # An IN list of statuses cannot be read in order from the (status, …) indexes, so
        # both databases walk the table in id order, through every row, when the ticked
        # statuses are rare. The page is instead taken from each status's own top rows.
        tops = []
        for status in job_filter.statuses:
            one = replace(job_filter, statuses=[status])
            top = (
                select(Job.id)
                .where(*one.conditions(), *after)
                .order_by(*status_first, *ordering)
                .limit(limit + 1)
                .subquery()
            )
            tops.append(select(top.c.id))
        statement = select(Job).where(Job.id.in_(union_all(*tops)))
    else:
        statement = select(Job).where(*job_filter.conditions(), *after)
        if job_filter.statuses:
            ordering = [*status_first, *ordering]
    rows = list(db.session.scalars(statement.order_by(*ordering).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, column.key), last.id)
    return rows, next_cursor


def count_by_status(job_filter: JobFilter | None = None, cap: int | None = None) -> dict[str, int]:
    """Jobs per status; with `cap`, each count stops at cap + 1 (shown as "cap+").

    A capped count reads its rows in (status, id) order, so the store walks the (status, id)
    index and stops at the cap: unordered, PostgreSQL reads a common status by a sequential
    scan that stops at the cap only when the matches come early in the table, and in id
    order alone it may walk the primary key past every job of the other statuses.

    On SQLite a filter that narrows by an index (`JobFilter.narrows_by_index`) and matches no
    more jobs than the cap is counted in one grouped read of its own range (`_counted_if_few`):
    per status, a rare type's counts walked every job of each status for the few of its own (a
    walk of the store for /jobs/counts?type=), SQLite's statistics knowing only the average
    jobs per type. PostgreSQL's know each common value's share, and its planner weighs them.
    """
    job_filter = job_filter or JobFilter()
    base_conditions = job_filter.conditions()
    if cap is not None and job_filter.narrows_by_index() and not on_postgresql():
        few = _counted_if_few(base_conditions, cap)
        if few is not None:
            return few
    counts = {}
    for status in Status:
        inner = select(Job.id).where(status_among(Job.status, [status]), *base_conditions)
        if cap is not None:
            inner = inner.order_by(Job.status, Job.id).limit(cap + 1)
        counts[str(status)] = db.session.execute(select(func.count()).select_from(inner.subquery())).scalar_one()
    return counts


def _counted_if_few(conditions: list[Any], cap: int) -> dict[str, int] | None:
    """Jobs per status of `conditions`, exact, when they match no more than `cap` jobs; None when
    they match more. The matching ids are counted along the filter's index (no further than
    cap + 1), and only a few are read and grouped: their ids first (MATERIALIZED), then their rows
    by primary key. Grouped at once, SQLite walked a status-led index of the whole store to skip
    the grouping's sort."""
    matching = select(Job.id).where(*conditions).limit(cap + 1)
    if db.session.execute(select(func.count()).select_from(matching.subquery())).scalar_one() > cap:
        return None
    few = matching.cte("few").prefix_with("MATERIALIZED")
    per_status = select(Job.status, func.count()).select_from(few.join(Job, Job.id == few.c.id)).group_by(Job.status)
    grouped: dict[str, int] = {status: n for status, n in db.session.execute(per_status)}
    return {str(status): grouped.get(str(status), 0) for status in Status}


# Queued types walked at most: past this many, /health names none of the later ones.
QUEUED_TYPES_WALKED = 1_000


def queued_types(*, limit: int | None = None) -> list[str]:
    """The types of queued jobs, by name (at most `limit`), walked through `ix_jobs_queued_type`
    one probe per type: a backlog of a million jobs of one type costs what one job does
    (SELECT DISTINCT read every queued job: 70-155 ms at 900,000)."""
    return distinct_values(Job.type, status_is(Job.status, Status.QUEUED), limit=limit)


def uncovered_queued_types(covered: set[str], *, limit: int = 20) -> list[str]:
    """Types of queued jobs that no worker in `covered` takes (the health report), by name. The
    covered types are passed over after their probe, not inside it, where the walk would read
    every queued job of a covered type."""
    return [name for name in queued_types(limit=QUEUED_TYPES_WALKED) if name not in covered][:limit]


def finished_times(*conditions: Any, columns: tuple[Any, ...] = ()) -> Any:
    """Finished jobs (those matching `conditions` too) with their status and each time in microseconds.

    Each timestamp is converted once per job: the CTE is materialized, so the store
    does not repeat the conversion in every sum.
    """
    return (
        select(
            Job.status,
            *columns,
            epoch_us(Job.created_at).label("created"),
            epoch_us(Job.claimed_at).label("claimed"),
            epoch_us(Job.started_at).label("started"),
            epoch_us(Job.finished_at).label("finished"),
        )
        .where(Job.status.in_(sorted(FINISHED)), *conditions)
        .cte("finished_times")
        .prefix_with("MATERIALIZED")
    )


def phase_sums(t: Any) -> list[Any]:
    """Over `finished_times` rows: how many, and the microseconds spent waiting (created → claimed),
    claimed (→ started) and running (→ finished) summed over the jobs that have those times
    (`waits`, `runs` of them). The hourly rollups keep exactly these columns."""
    ran = and_(t.claimed.is_not(None), t.started.is_not(None))
    return [
        func.count().label("jobs"),
        func.sum(t.claimed - t.created).label("wait_us"),
        func.count(t.claimed).label("waits"),
        func.sum(case((ran, t.started - t.claimed))).label("claimed_us"),
        func.sum(case((ran, t.finished - t.started))).label("running_us"),
        func.count(case((ran, 1))).label("runs"),
    ]


def live_finished_per_bucket(since: datetime, bucket: timedelta, *, after: datetime | None = None) -> list[Any]:
    """Jobs finished since `after` (default `since`), per (bucket, status), from the jobs table.

    Each row: `slot` (the bucket's index from `since`), `status` and the `phase_sums`.
    """
    t = finished_times(Job.finished_at >= (after or since)).c
    slot = ((t.finished - microseconds(since)) // (bucket // MICROSECOND)).label("slot")
    return list(db.session.execute(select(slot, t.status, *phase_sums(t)).group_by(slot, t.status)))


def live_finished_by_type(since: datetime) -> list[Any]:
    """Jobs finished since `since` per (type, status): rows of `type`, `status`, `jobs`."""
    return list(
        db.session.execute(
            select(Job.type, Job.status, func.count().label("jobs"))
            .where(Job.status.in_(sorted(FINISHED)), Job.finished_at >= since)
            .group_by(Job.type, Job.status)
        )
    )


# Failures /stats groups by their error at most: the newest of its window. A storm of failures
# (a million in a day) is read no further than a capped count reads.
FAILURES_GROUPED = COUNT_CAP


class ErrorGroups(NamedTuple):
    groups: list[tuple[str | None, int]]  # (error message, failed jobs), most frequent first
    grouped: int  # the failures grouped

    @property
    def newest_only(self) -> bool:
        """FAILURES_GROUPED were grouped, the window's newest: it may hold more."""
        return self.grouped >= FAILURES_GROUPED


def failures_by_error(since: datetime, *, limit: int = 20) -> ErrorGroups:
    """Failed jobs since `since` grouped by their error message, most frequent first: the
    newest FAILURES_GROUPED of them (read backwards along ix_jobs_status_finished). Grouped
    whole, /stats read every failure of its window at every load."""
    newest = (
        select(Job.last_error)
        .where(status_is(Job.status, Status.FAILED), Job.finished_at >= since)
        .order_by(Job.finished_at.desc())
        .limit(FAILURES_GROUPED)
        .subquery("newest_failures")
    )
    count = func.count().label("n")
    grouped = func.sum(func.count()).over().label("grouped")
    rows = db.session.execute(
        select(newest.c.last_error, count, grouped)
        .group_by(newest.c.last_error)
        .order_by(count.desc(), newest.c.last_error)
        .limit(limit)
    ).all()
    return ErrorGroups([(error, n) for error, n, _ in rows], int(rows[0].grouped) if rows else 0)


def ids_matching(job_filter: JobFilter, *, limit: int = BULK_LIMIT) -> list[int]:
    """Ids of the jobs a filter matches, oldest first; BadQuery when more than `limit` do."""
    ids = list(
        db.session.scalars(
            select(Job.id).where(*job_filter.conditions()).order_by(*_in_id_order(job_filter)).limit(limit + 1)
        )
    )
    if len(ids) > limit:
        raise BadQuery("filter", f"the filter matches more than {limit} jobs; narrow it")
    return ids


def _in_id_order(job_filter: JobFilter) -> list[Any]:
    """Id order; of one status, (status, id): the order of the index the status leads
    (`status_among`)."""
    return [Job.status, Job.id] if len(job_filter.statuses) == 1 else [Job.id]


def count_matching(job_filter: JobFilter, *, cap: int) -> int:
    """How many jobs a filter matches, counting no further than cap + 1 (in id order, through an index)."""
    inner = select(Job.id).where(*job_filter.conditions()).order_by(*_in_id_order(job_filter)).limit(cap + 1)
    return db.session.execute(select(func.count()).select_from(inner.subquery())).scalar_one()


def distinct_values(column: Any, *conditions: Any, limit: int | None = None) -> list[Any]:
    """The distinct non-null values of an indexed `column` of jobs, in order (at most `limit`),
    of the rows that match `conditions` (none: all).

    A loose index scan: a recursive CTE asks the index that `column` leads for the
    smallest value above the last one found, one probe per value, so the cost grows
    with the number of values returned, not with the table (SELECT DISTINCT reads
    every row). `column` must lead an index of its table (ix_jobs_type_id,
    ix_jobs_queue_status_key) whose predicate, if it has one, `conditions` state in its
    own words (ix_jobs_queued_type: `status_is(Job.status, Status.QUEUED)`).
    """
    walk_start = (
        select(func.min(column).label("value"), literal(1).label("n")).where(*conditions).cte("walk", recursive=True)
    )
    next_value = select(func.min(column)).where(column > walk_start.c.value, *conditions).scalar_subquery()
    step = select(next_value, walk_start.c.n + 1).where(walk_start.c.value.is_not(None))
    if limit is not None:
        step = step.where(walk_start.c.n < limit)
    walk = walk_start.union_all(step)
    found: ColumnElement[Any] = walk.c.value
    return list(db.session.scalars(select(found).where(found.is_not(None)).order_by(found)))
