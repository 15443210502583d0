"""Hourly rollups of finished jobs: /stats read from them gives what the live queries give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update

from webapp import jobs, monitor
from webapp.jobs.rollups import MAX_HOURS_PER_PASS, SUMMED
from webapp.server.dashboard import stats
from webapp.server.dashboard.stats import WINDOWS
from webapp.store.extensions import db
from webapp.store.models import Job, JobRollup, RollupProgress

from tests.factories import make_job

NOW = datetime(2026, 11, 26, 12, 5, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
MICRO = timedelta(microseconds=1)


def finish(status: str, finished_at: datetime, number: int, job_type: str = "mail.send") -> Job:
    job = make_job(status, type=job_type)
    created_at = finished_at - timedelta(seconds=100 + number, microseconds=123_457 * number)
    claimed_at = None if number % 5 == 2 else created_at + timedelta(seconds=7, microseconds=999_999)
    started_at = None if claimed_at is None or number % 7 == 3 else claimed_at + timedelta(microseconds=250_001)
    times = dict(created_at=created_at, claimed_at=claimed_at, started_at=started_at, finished_at=finished_at)
    db.session.execute(update(Job).where(Job.id == job.id).values(**times))
    db.session.commit()
    return job


def spread_over_seven_days() -> None:
    """Finished jobs at bucket edges, at hour boundaries and a microsecond either side, of three types."""
    first = stats.over(NOW, WINDOWS["7d"]).buckets[0][0]
    moments = [first - MICRO, first, first + MICRO]
    for hours in (1, 2, 3, 5, 26, 47, 90, 140, 166):
        edge = first + hours * HOUR
        moments += [edge - MICRO, edge, edge + timedelta(minutes=29, seconds=59)]
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    moments += [hour - HOUR - MICRO, hour - HOUR, hour - MICRO, hour, NOW - timedelta(seconds=1)]
    moments.append(NOW + timedelta(days=1))  # a clock ahead of ours
    statuses = ("completed", "failed", "cancelled", "completed")
    types = ("mail.send", "video.encode", "report.build")
    for number, moment in enumerate(moments):
        finish(statuses[number % 4], moment, number, types[number % 3])


def roll_up_everything(now: datetime = NOW) -> int:
    hours = 0
    while rolled := jobs.roll_up(now):
        hours += rolled
    return hours


def keyed(rows) -> dict:
    return {(row.slot, row.status): tuple(int(getattr(row, name) or 0) for name in SUMMED) for row in rows}


def test_buckets_and_types_read_from_rollups_equal_the_live_queries(app):
    spread_over_seven_days()
    assert roll_up_everything() > 6 * 24
    assert jobs.rolled_up_to() == NOW.replace(hour=11, minute=0, second=0, microsecond=0)
    assert db.session.scalar(select(func.count()).select_from(JobRollup)) > 0

    for window in WINDOWS.values():
        since = stats.over(NOW, window).buckets[0][0]
        for bucket in (window.bucket, HOUR, 2 * HOUR, timedelta(minutes=90), timedelta(hours=3, minutes=1)):
            assert keyed(jobs.finished_per_bucket(since, bucket)) == keyed(jobs.live_finished_per_bucket(since, bucket))
        live_types = {(row.type, row.status): row.jobs for row in jobs.live_finished_by_type(since)}
        assert jobs.finished_by_type(since) == live_types
    off_the_hour = NOW - timedelta(days=3, minutes=17)
    assert keyed(jobs.finished_per_bucket(off_the_hour, 3 * HOUR)) == keyed(
        jobs.live_finished_per_bucket(off_the_hour, 3 * HOUR)
    )


def test_the_7d_stats_read_rolled_up_hours_from_the_rollups(app):
    """Jobs gone from the table after their hour was rolled up still count: the rollups are read."""
    job = finish("completed", NOW - timedelta(days=2), 1)
    before = stats.over(NOW, WINDOWS["7d"])
    roll_up_everything()
    db.session.execute(delete(Job).where(Job.id == job.id))
    db.session.commit()

    after = stats.over(NOW, WINDOWS["7d"])

    assert after.finished == before.finished == 1
    assert after.buckets == before.buckets and after.averages == before.averages
    assert [(row.type, row.completed) for row in after.by_type] == [("mail.send", 1)]


def test_rolling_up_the_same_hours_again_changes_nothing(app):
    spread_over_seven_days()
    roll_up_everything()
    rows = set(db.session.execute(select(JobRollup.__table__)))
    db.session.execute(delete(RollupProgress))
    db.session.commit()

    roll_up_everything()

    assert set(db.session.execute(select(JobRollup.__table__))) == rows


def test_an_hour_is_rolled_up_only_once_it_ended_the_margin_ago(app):
    finish("completed", datetime(2026, 11, 26, 10, 30, tzinfo=UTC), 1)

    assert roll_up_everything(datetime(2026, 11, 26, 11, 9, 59, tzinfo=UTC)) == 0
    assert roll_up_everything(datetime(2026, 11, 26, 11, 10, tzinfo=UTC)) == 1
    assert jobs.rolled_up_to() == datetime(2026, 11, 26, 11, 0, tzinfo=UTC)


def test_a_watermark_moved_by_another_pass_meanwhile_is_left_to_it(app, monkeypatch):
    finish("completed", NOW - timedelta(days=3), 1)
    jobs.roll_up(NOW)
    theirs = jobs.rolled_up_to()
    stale = theirs - MAX_HOURS_PER_PASS * HOUR
    monkeypatch.setattr("webapp.jobs.rollups.rolled_up_to", lambda: stale)

    assert jobs.roll_up(NOW) == 0

    monkeypatch.undo()
    assert jobs.rolled_up_to() == theirs


def test_the_monitor_rolls_up_and_prunes_only_jobs_whose_hours_are_rolled_up(app):
    now = datetime.now(UTC)
    oldest = finish("completed", now - timedelta(days=40), 1).id
    old = finish("completed", now - timedelta(days=20), 2).id

    first = monitor.run_pass(now=now)

    assert first["rolled_up_hours"] == MAX_HOURS_PER_PASS
    remaining = set(db.session.scalars(select(Job.id)))
    assert oldest not in remaining and old in remaining
    while monitor.run_pass(now=now)["rolled_up_hours"]:
        pass
    assert set(db.session.scalars(select(Job.id))) == set()
    since = now - timedelta(days=45)
    assert (
        sum(row.jobs for row in jobs.finished_per_bucket(since.replace(minute=0, second=0, microsecond=0), HOUR)) == 2
    )
