"""The failure-rate measure reads a window's whole hours from the rollups and only its
edges from the jobs table, and counts what the jobs table counts (on both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, update

from webapp import jobs
from webapp.jobs.alert_measures import failure_counts
from webapp.store.extensions import db
from webapp.store.models import Job

from tests.factories import make_job

NOW = datetime(2026, 11, 26, 12, 5, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
MICRO = timedelta(microseconds=1)
# Edges inside an hour (5 min, 15 min), one hour and a half, six hours, seven whole hours.
WINDOWS = (300, 900, 5400, 6 * 3600, 7 * 3600)


def finished_jobs() -> list[tuple[str, str, str, datetime]]:
    """(type, queue, status, finished_at) at hour edges, a microsecond either side and inside hours."""
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    moments = [NOW - timedelta(seconds=s) for s in (1, 299, 301, 899, 901)]
    for back in range(1, 9):
        edge = hour - back * HOUR
        moments += [
            edge - MICRO,
            edge,
            edge + timedelta(minutes=5, seconds=30),
            edge + timedelta(minutes=5, seconds=31),
        ]
    moments.append(NOW + timedelta(days=1))  # a clock ahead of ours counts, as before
    made = []
    for number, moment in enumerate(moments):
        spec = ("video.encode", "gpu") if number % 3 else ("mail.send", "default")
        status = ("completed", "failed", "cancelled", "completed", "failed")[number % 5]
        job = make_job(status, type=spec[0], queue=spec[1])
        db.session.execute(update(Job).where(Job.id == job.id).values(finished_at=moment))
        made.append((*spec, status, moment))
    db.session.commit()
    return made


def expected(made, window: int) -> dict[str, tuple[int, int]]:
    counts: dict[str, tuple[int, int]] = {}
    for job_type, queue, status, moment in made:
        if status == "cancelled" or moment < NOW - timedelta(seconds=window):
            continue
        for subject in (job_type, "queue:" + queue):
            failed, ran = counts.get(subject, (0, 0))
            counts[subject] = (failed + (status == "failed"), ran + 1)
    return counts


def test_failure_counts_are_the_jobs_tables_before_and_after_the_roll_up(app):
    made = finished_jobs()
    want = {window: expected(made, window) for window in WINDOWS}
    assert failure_counts(NOW, WINDOWS) == want  # nothing rolled up: all from the jobs table

    while jobs.roll_up(NOW):
        pass
    assert jobs.rolled_up_to() == datetime(2026, 11, 26, 11, tzinfo=UTC)
    assert failure_counts(NOW, WINDOWS) == want

    # The whole hours every long window covers come from the rollups: without their jobs
    # (pruned, say) the counts stay; a reader of the jobs table alone would lose them.
    db.session.execute(
        delete(Job).where(
            Job.finished_at >= datetime(2026, 11, 26, 7, tzinfo=UTC),
            Job.finished_at < datetime(2026, 11, 26, 11, tzinfo=UTC),
        )
    )
    db.session.commit()
    assert failure_counts(NOW, WINDOWS)[6 * 3600] == want[6 * 3600]
    assert failure_counts(NOW, WINDOWS)[7 * 3600] == want[7 * 3600]


def test_a_window_inside_the_hours_not_yet_rolled_up_reads_the_jobs_table(app):
    made = finished_jobs()
    while jobs.roll_up(NOW):
        pass
    # A clock behind the watermark (a test's, or a replica's): its window ends before it.
    earlier = NOW - 3 * HOUR
    got = failure_counts(earlier, [5400])[5400]
    counts: dict[str, tuple[int, int]] = {}
    for job_type, queue, status, moment in made:
        if status != "cancelled" and moment >= earlier - timedelta(seconds=5400):
            for subject in (job_type, "queue:" + queue):
                failed, ran = counts.get(subject, (0, 0))
                counts[subject] = (failed + (status == "failed"), ran + 1)
    assert got == counts
