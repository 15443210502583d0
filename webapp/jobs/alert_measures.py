"""What the alert rules measure, in a few grouped reads for every rule at once.

Every function answers `{subject: value}` for all subjects at once, so a pass with a
hundred rules costs a constant number of statements, not one per rule: the failure
rates of every window in one (whole hours from the rollups, only the edges from the jobs
table), the stalled runs in one, one for the workers and two for the schedules. What reads
the queued jobs (queue latency, the types no worker takes) reads a few index entries per
queue or type, never the backlog: a pass runs every few seconds, also during an outage.
Each round trip counts: on a loaded machine it costs more than the statement. failure_rate
also answers how many jobs ran, for the rule's `min_jobs`. The statements whose shape never
changes are built once, at import: building one anew each pass cost more Python than its rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, select, union_all

from ..domain.alerts import QUEUE_PREFIX
from ..domain.statuses import Status
from ..domain.worker_states import WorkerState
from ..store.extensions import db
from ..store.models import Job, WaitRollup, Worker
from ..store.status_sql import status_is
from .queries import queued_types
from .rollups import HOUR, rolled_up_to, start_of_hour
from .series import sampled_type_depths
from .workers import served_types

# failure_rate: per subject (type, or queue:NAME), failed and ran (completed + failed).
Ratios = dict[str, tuple[int, int]]
SCHEDULES_LOOKED_AT = 100  # schedule_failing of *: the schedules with a recent failure, at most this many
SCHEDULE_LOOKBACK = timedelta(days=7)


def failure_counts(now: datetime, windows: Iterable[int]) -> dict[int, Ratios]:
    """Per window, finished jobs per type and per queue: (failed, completed + failed).

    A window's whole hours that are rolled up come from `job_wait_rollups` (a few rows an
    hour, counted as the jobs table counts them); only its edges come from the jobs table:
    the part of its first hour inside the window, and the time since the rollups'
    watermark (10 to 70 min). One statement serves every window: a grouped read of each
    table (UNION ALL), each row tagged with the piece of time it falls in, and a window adds
    up the pieces it covers.
    """
    ordered = sorted(set(windows))
    if not ordered:
        return {}
    done = rolled_up_to()
    rolled_end = min(done, start_of_hour(now)) if done else None  # the hours before this are rolled up
    spans = [_Span.of(window, now - timedelta(seconds=window), rolled_end) for window in ordered]
    counts: dict[int, Ratios] = {w: {} for w in ordered}
    reads = [read for read in (_jobs_pieces(spans), _rolled_pieces(spans, rolled_end)) if read]
    statement = union_all(
        *(
            query.add_columns(literal(source).label("source"))
            for source, (queries, _) in enumerate(reads)
            for query in queries
        )
    )
    for job_type, queue, status, piece, n, source in db.session.execute(statement):
        for window in reads[source][1][piece]:
            per_window = counts[window]
            for subject in (job_type, QUEUE_PREFIX + queue):
                failed, ran = per_window.get(subject, (0, 0))
                per_window[subject] = (failed + (int(n) if status == Status.FAILED else 0), ran + int(n))
    return counts


@dataclass(frozen=True)
class _Span:
    """Where a window's counts come from: jobs finished in `from_jobs` (ranges, an open end
    None), and rolled-up hours from `hours_from` (None: none) to the watermark."""

    window: int
    from_jobs: tuple[tuple[datetime, datetime | None], ...]
    hours_from: datetime | None

    @classmethod
    def of(cls, window: int, since: datetime, rolled_end: datetime | None) -> _Span:
        first_whole = start_of_hour(since) + HOUR if since != start_of_hour(since) else since
        if rolled_end is None or first_whole >= rolled_end:
            return cls(window, ((since, None),), None)
        edge = ((since, first_whole),) if since < first_whole else ()
        return cls(window, (*edge, (rolled_end, None)), first_whole)


# Grouped reads (type, queue, status, piece, jobs) and, per piece, the windows it counts for.
_Pieces = tuple[list[Select[Any]], list[list[int]]]


def _jobs_pieces(spans: list[_Span]) -> _Pieces:
    """The jobs-table edges of every window: one grouped read per range of finish times.
    (One read of the ranges OR-ed together made SQLite gather the rows' ids and fetch each
    row from the table, 4.0 ms against 2.5 ms for ~3,000 jobs; PostgreSQL runs both alike.)"""
    cuts = sorted({moment for span in spans for lo, hi in span.from_jobs for moment in (lo, hi) if moment})
    piece = case(*((Job.finished_at >= cut, len(cuts) - 1 - i) for i, cut in enumerate(reversed(cuts)))).label("piece")
    ranges = [
        Job.finished_at >= lo if hi is None else and_(Job.finished_at >= lo, Job.finished_at < hi)
        for lo, hi in _merged(r for span in spans for r in span.from_jobs)
    ]
    queries = [
        select(Job.type, Job.queue, Job.status, piece, func.count())
        .where(Job.status.in_((Status.COMPLETED, Status.FAILED)), in_range)
        .group_by(Job.type, Job.queue, Job.status, piece)
        for in_range in ranges
    ]
    covering = [
        [s.window for s in spans if any(lo <= cut and (hi is None or cut < hi) for lo, hi in s.from_jobs)]
        for cut in cuts
    ]
    return queries, covering


def _merged(ranges: Iterable[tuple[datetime, datetime | None]]) -> list[tuple[datetime, datetime | None]]:
    merged: list[tuple[datetime, datetime | None]] = []
    for lo, hi in sorted(ranges, key=lambda r: r[0]):
        if merged and (merged[-1][1] is None or lo <= merged[-1][1]):
            last_lo, last_hi = merged[-1]
            merged[-1] = (last_lo, None if hi is None or last_hi is None else max(hi, last_hi))
        else:
            merged.append((lo, hi))
    return merged


def _rolled_pieces(spans: list[_Span], rolled_end: datetime | None) -> _Pieces | None:
    """The rolled-up whole hours of every window (None: no window has any). The windows'
    hours all end at the watermark, so a row counts for the window whose first hour it is
    in and every longer one."""
    rolled = [span for span in spans if span.hours_from is not None]
    if not rolled or rolled_end is None:
        return None
    r = WaitRollup
    shortest = case(*((r.hour >= span.hours_from, index) for index, span in enumerate(rolled))).label("shortest")
    query = (
        select(r.type, r.queue, r.status, shortest, func.sum(r.jobs))
        .where(r.status.in_((Status.COMPLETED, Status.FAILED)), r.hour >= rolled[-1].hours_from, r.hour < rolled_end)
        .group_by(r.type, r.queue, r.status, shortest)
    )
    return [query], [[span.window for span in rolled[index:]] for index in range(len(rolled))]


# Built once (every pass runs it). The running jobs are MATERIALIZED first: SQLite would
# otherwise walk the whole table in type order to group them.
_RUNNING = (
    select(Job.type, func.coalesce(Job.heartbeat_at, Job.started_at).label("seen"))
    .where(Job.status == Status.RUNNING)
    .cte("running")
    .prefix_with("MATERIALIZED")
)
_SILENCES = select(_RUNNING.c.type, func.min(_RUNNING.c.seen)).group_by(_RUNNING.c.type)


def silences(now: datetime) -> dict[str, float]:
    """stalled: per type, the longest a running job has sent no heartbeat (progress reports
    are heartbeats), in seconds."""
    return {job_type: (now - seen).total_seconds() for job_type, seen in db.session.execute(_SILENCES) if seen}


def unserved(now: datetime, worker_timeout_s: float, most: int, *, left_within_s: float = 0.0) -> dict[str, float]:
    """no_worker: per queued type no live worker takes, its queued jobs. A worker that stopped
    or went silent within `left_within_s` still counts for its types: a deploy that replaces
    the workers is no incident (Prometheus' `for:`), a fleet gone for longer is.

    The queued types are walked one index probe each (`queries.queued_types`), and only the
    unserved ones counted, each along its own index range and no further than `most`: a
    backlog is what this rule is about, and one GROUP BY over every queued job took 270 ms of
    each monitor pass at 900,000 queued. A type counted to `most` is given its count at the
    newest queue-depth sample (the pass takes it first, once a minute) when that is larger:
    the alert said "10000 jobs" while 900,000 waited."""
    served = served_types(now, worker_timeout_s, left_within_s=left_within_s)
    if served is None:
        return {}
    named = [name for name in queued_types() if name not in served]
    if not named:
        return {}
    queued = status_is(Job.status, Status.QUEUED)
    parts = [
        select(
            literal(name).label("type"),
            select(func.count())
            .select_from(select(Job.id).where(queued, Job.type == name).limit(most).subquery())
            .scalar_subquery(),
        )
        for name in named
    ]
    rows = db.session.execute(union_all(*parts) if len(parts) > 1 else parts[0]).all()
    counted = {job_type: n for job_type, n in rows if n}
    at_most = [job_type for job_type, n in counted.items() if n >= most]
    for job_type, sampled in sampled_type_depths(at_most).items():
        counted[job_type] = max(counted[job_type], sampled)
    return {job_type: float(n) for job_type, n in counted.items()}


def schedule_failures(now: datetime, named: Iterable[str], most: int) -> dict[str, float]:
    """Per schedule, how many of its newest finished runs failed in a row (counted up to `most`).

    Looks at the schedules `named` and those with a run failed in the last week (one
    index range), then reads the newest runs of all of them in one statement (a short
    range of ix_jobs_schedule_id each, UNION ALL)."""
    recent = db.session.scalars(
        select(Job.schedule)
        .where(Job.status == Status.FAILED, Job.finished_at >= now - SCHEDULE_LOOKBACK, Job.schedule.is_not(None))
        .distinct()
        .limit(SCHEDULES_LOOKED_AT)
    )
    names = sorted({*named, *(name for name in recent if name)})
    if not names:
        return {}
    newest = [
        select(Job.schedule, Job.status, Job.id)
        .where(Job.schedule == name, Job.status.in_((Status.COMPLETED, Status.FAILED)))
        .order_by(Job.id.desc())
        .limit(most)
        .subquery()
        for name in names
    ]
    runs = db.session.execute(union_all(*(select(run.c.schedule, run.c.status, run.c.id) for run in newest))).all()
    streaks: dict[str, float] = {}
    broken: set[str] = set()
    for schedule, status, _ in sorted(runs, key=lambda run: (run[0], -run[2])):
        if schedule in broken:
            continue
        if status != Status.FAILED:
            broken.add(schedule)
            continue
        streaks[schedule] = streaks.get(schedule, 0.0) + 1
    return streaks


def worker_deaths(now: datetime, windows: Iterable[int]) -> dict[int, dict[str, float]]:
    """Per window, workers declared dead in it, per host and in all (`*`): one read of the
    (few) dead workers of the longest window."""
    ordered = sorted(set(windows))
    if not ordered:
        return {}
    rows = db.session.execute(
        select(Worker.hostname, Worker.last_seen_at).where(
            Worker.state == WorkerState.GONE, Worker.last_seen_at >= now - timedelta(seconds=ordered[-1])
        )
    ).all()
    deaths: dict[int, dict[str, float]] = {}
    for window in ordered:
        cutoff = now - timedelta(seconds=window)
        per_host: dict[str, float] = {}
        for host, seen in rows:
            if seen >= cutoff:
                per_host[str(host)] = per_host.get(str(host), 0.0) + 1
        total = sum(per_host.values())
        deaths[window] = {**per_host, "*": total} if total else {}
    return deaths
