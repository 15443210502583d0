"""Hourly rollups of finished jobs: /stats over days reads a few hundred rows, not every job.

The monitor's pass (`roll_up`) adds the whole hours that ended at least ROLLUP_MARGIN ago
(so a transition committed late, with an earlier finished_at, still lands in its hour), at
most MAX_HOURS_PER_PASS at a time, and moves the watermark (`RollupProgress`) past them.
The readers here take the hours below the watermark from the rollups and the rest from the
jobs table, so they answer what the live queries answer. Rollups are history: a job pruned,
or re-queued (resume, force start) after its hour was rolled up, stays counted in that hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..domain.statuses import FINISHED
from ..store.extensions import db
from ..store.models import Job, JobRollup, RollupProgress
from ..store.sql_time import MICROSECOND, epoch_us, hour_of, microseconds
from ..store.transaction import rows_changed, unit_of_work
from .queries import finished_times, live_finished_by_type, live_finished_per_bucket, phase_sums
from .wait_rollups import roll_up_waits

HOUR = timedelta(hours=1)
ROLLUP_MARGIN = timedelta(minutes=10)
MAX_HOURS_PER_PASS = 24  # a first pass over a long history catches up a day at a time
SUMMED = ("jobs", "wait_us", "waits", "claimed_us", "running_us", "runs")


@dataclass
class Finished:
    """Jobs finished in one bucket with one status, and their `phase_sums`."""

    slot: int
    status: str
    jobs: int = 0
    wait_us: int = 0
    waits: int = 0
    claimed_us: int = 0
    running_us: int = 0
    runs: int = 0


class _Overtaken(Exception):
    """Another pass moved the watermark first: it rolled up these hours."""


def start_of_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def rolled_up_to() -> datetime | None:
    """Every hour before this one is rolled up (None: none is yet)."""
    return db.session.execute(select(RollupProgress.rolled_up_to).where(RollupProgress.id == 1)).scalar()


def _oldest_finished_hour() -> datetime | None:
    # One index range (ix_jobs_status_finished) per status.
    oldest = [
        db.session.execute(select(func.min(Job.finished_at)).where(Job.status == status)).scalar()
        for status in sorted(FINISHED)
    ]
    found = [moment for moment in oldest if moment is not None]
    return start_of_hour(min(found)) if found else None


def roll_up(now: datetime) -> int:
    """Roll up the next whole hours that are due; how many (0: none is, or another pass did them).

    One transaction: the watermark moves by compare-and-set, and the hours' rows are
    deleted and inserted anew, so rolling up an hour again changes nothing.
    """
    done = rolled_up_to()
    start = done or _oldest_finished_hour()
    due = start_of_hour(now - ROLLUP_MARGIN)
    if start is None or start >= due:
        return 0
    end = min(due, start + MAX_HOURS_PER_PASS * HOUR)
    moved = update(RollupProgress).where(RollupProgress.id == 1, RollupProgress.rolled_up_to == done)
    t = finished_times(
        Job.finished_at >= start, Job.finished_at < end, columns=(Job.type, hour_of(Job.finished_at).label("hour"))
    ).c
    try:
        with unit_of_work():
            if done is None:
                db.session.execute(insert(RollupProgress).values(id=1, rolled_up_to=end))
            elif not rows_changed(db.session.execute(moved.values(rolled_up_to=end))):
                raise _Overtaken
            db.session.execute(delete(JobRollup).where(JobRollup.hour >= start, JobRollup.hour < end))
            db.session.execute(
                insert(JobRollup).from_select(
                    ["hour", "type", "status", *SUMMED],
                    select(t.hour, t.type, t.status, *phase_sums(t)).group_by(t.hour, t.type, t.status),
                )
            )
            roll_up_waits(start, end)
    except (_Overtaken, IntegrityError):
        return 0
    return (end - start) // HOUR


def _live_from(since: datetime, bucket: timedelta) -> datetime:
    """Where the jobs table takes over from the rollups: `since` itself when whole hours do not fit its buckets."""
    if bucket % HOUR or microseconds(since) % (HOUR // MICROSECOND):
        return since
    done = rolled_up_to()
    return max(since, done) if done else since


def finished_per_bucket(since: datetime, bucket: timedelta) -> list[Finished]:
    """Jobs finished since `since` per (bucket, status), as `live_finished_per_bucket` counts them."""
    live_from = _live_from(since, bucket)
    rows = list(live_finished_per_bucket(since, bucket, after=live_from))
    if live_from > since:
        r = JobRollup
        slot = ((epoch_us(r.hour) - microseconds(since)) // (bucket // MICROSECOND)).label("slot")
        sums = [func.sum(getattr(r, name)).label(name) for name in SUMMED]
        rows += db.session.execute(
            select(slot, r.status, *sums).where(r.hour >= since, r.hour < live_from).group_by(slot, r.status)
        )
    merged: dict[tuple[int, str], Finished] = {}
    for row in rows:
        entry = merged.setdefault((row.slot, row.status), Finished(row.slot, row.status))
        for name in SUMMED:
            setattr(entry, name, getattr(entry, name) + int(getattr(row, name) or 0))  # PostgreSQL sums to a Decimal
    return list(merged.values())


def finished_by_type(since: datetime) -> dict[tuple[str, str], int]:
    """Jobs finished since `since` per (type, status), as `live_finished_by_type` counts them."""
    live_from = _live_from(since, HOUR)
    rows = list(live_finished_by_type(live_from))
    if live_from > since:
        r = JobRollup
        rows += db.session.execute(
            select(r.type, r.status, func.sum(r.jobs).label("jobs"))
            .where(r.hour >= since, r.hour < live_from)
            .group_by(r.type, r.status)
        )
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        counts[row.type, row.status] = counts.get((row.type, row.status), 0) + int(row.jobs)
    return counts
