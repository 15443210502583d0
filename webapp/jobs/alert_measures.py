"""What the alert rules measure, each kind one grouped read over an index range.

Every function answers `{subject: value}` for all subjects at once, so a pass with a
hundred rules costs one read per (kind, window), not one per rule. failure_rate also
answers how many jobs ran, for the rule's `min_jobs`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from ..domain.alerts import QUEUE_PREFIX
from ..domain.statuses import Status
from ..domain.worker_states import WorkerState
from ..store.extensions import db
from ..store.models import Job, Worker
from .workers import unserved_types

# failure_rate: per subject (type, or queue:NAME), failed and ran (completed + failed).
Ratios = dict[str, tuple[int, int]]
SCHEDULES_LOOKED_AT = 100  # schedule_failing of *: the schedules with a recent failure, at most this many
SCHEDULE_LOOKBACK = timedelta(days=7)


def failure_counts(now: datetime, windows: Iterable[int]) -> dict[int, Ratios]:
    """Per window, finished jobs per type and per queue: (failed, completed + failed).

    One index range over the longest window; each row is tagged with the shortest window
    it falls in, and the counts of a window add up the tags up to its own."""
    ordered = sorted(set(windows))
    if not ordered:
        return {}
    tag = case(
        *((Job.finished_at >= now - timedelta(seconds=w), index) for index, w in enumerate(ordered)),
        else_=len(ordered),
    ).label("tag")
    rows = db.session.execute(
        select(Job.type, Job.queue, Job.status, tag, func.count())
        .where(
            Job.status.in_((Status.COMPLETED, Status.FAILED)), Job.finished_at >= now - timedelta(seconds=ordered[-1])
        )
        .group_by(Job.type, Job.queue, Job.status, tag)
    ).all()
    counts: dict[int, Ratios] = {w: {} for w in ordered}
    for job_type, queue, status, shortest, n in rows:
        for window in ordered[shortest:]:
            per_window = counts[window]
            for subject in (job_type, QUEUE_PREFIX + queue):
                failed, ran = per_window.get(subject, (0, 0))
                per_window[subject] = (failed + (n if status == Status.FAILED else 0), ran + n)
    return counts


def queue_latency(now: datetime) -> dict[str, float]:
    """Per queue, seconds the oldest ready queued job has waited (since it became ready: its
    `run_after`, which is its creation unless a retry's backoff held it)."""
    rows = db.session.execute(
        select(Job.queue, func.min(Job.run_after))
        .where(Job.status == Status.QUEUED, Job.run_after <= now)
        .group_by(Job.queue)
    )
    return {queue: (now - oldest).total_seconds() for queue, oldest in rows}


def unserved(now: datetime, worker_timeout_s: float) -> dict[str, float]:
    """Per type no live worker takes, its queued jobs."""
    types = unserved_types(now, worker_timeout_s)
    if not types:
        return {}
    rows = db.session.execute(
        select(Job.type, func.count()).where(Job.status == Status.QUEUED, Job.type.in_(types)).group_by(Job.type)
    )
    return {job_type: float(n) for job_type, n in rows}


def stalled(now: datetime) -> dict[str, float]:
    """Per type, the longest a running job has gone without a heartbeat (progress reports are heartbeats)."""
    last_sign = func.min(func.coalesce(Job.heartbeat_at, Job.started_at))
    rows = db.session.execute(select(Job.type, last_sign).where(Job.status == Status.RUNNING).group_by(Job.type))
    return {job_type: (now - seen).total_seconds() for job_type, seen in rows if seen is not None}


def schedule_failures(now: datetime, named: Iterable[str], most: int) -> dict[str, float]:
    """Per schedule, how many of its newest finished runs failed in a row (counted up to `most`).

    Looks at the schedules `named` and those with a run failed in the last week (one
    index range), one short read of its newest runs each (ix_jobs_schedule_id)."""
    recent = db.session.scalars(
        select(Job.schedule)
        .where(Job.status == Status.FAILED, Job.finished_at >= now - SCHEDULE_LOOKBACK, Job.schedule.is_not(None))
        .distinct()
        .limit(SCHEDULES_LOOKED_AT)
    )
    streaks: dict[str, float] = {}
    for schedule in sorted({*named, *(name for name in recent if name)}):
        statuses = db.session.scalars(
            select(Job.status)
            .where(Job.schedule == schedule, Job.status.in_((Status.COMPLETED, Status.FAILED)))
            .order_by(Job.id.desc())
            .limit(most)
        )
        streak = 0
        for status in statuses:
            if status != Status.FAILED:
                break
            streak += 1
        if streak:
            streaks[schedule] = float(streak)
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
