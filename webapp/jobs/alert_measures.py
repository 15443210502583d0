"""What the alert rules measure, each kind one grouped read over an index range.

Every function answers `{subject: value}` for all subjects at once, so a pass with a
hundred rules costs one read per (kind, window), not one per rule. failure_rate also
answers how many jobs ran, for the rule's `min_jobs`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select

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


def failure_counts(now: datetime, window_s: int) -> Ratios:
    """Finished jobs of the window per type and per queue: (failed, completed + failed)."""
    rows = db.session.execute(
        select(Job.type, Job.queue, Job.status, func.count())
        .where(Job.status.in_((Status.COMPLETED, Status.FAILED)), Job.finished_at >= now - timedelta(seconds=window_s))
        .group_by(Job.type, Job.queue, Job.status)
    )
    counts: Ratios = {}
    for job_type, queue, status, n in rows:
        for subject in (job_type, QUEUE_PREFIX + queue):
            failed, ran = counts.get(subject, (0, 0))
            counts[subject] = (failed + (n if status == Status.FAILED else 0), ran + n)
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


def worker_deaths(now: datetime, window_s: int) -> dict[str, float]:
    """Workers declared dead in the window, per host and in all (`*`)."""
    rows = db.session.execute(
        select(Worker.hostname, func.count())
        .where(Worker.state == WorkerState.GONE, Worker.last_seen_at >= now - timedelta(seconds=window_s))
        .group_by(Worker.hostname)
    )
    deaths = {str(host): float(n) for host, n in rows}
    total = sum(deaths.values())
    return {**deaths, "*": total} if total else {}
