"""The failure-rate measure reads a window's whole hours from the rollups and only its
edges from the jobs table, and counts what the jobs table counts (on both backends); every
read the alert evaluation makes of the jobs table stays inside an index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, event, update

from webapp import jobs
from webapp.jobs import alert_rules
from webapp.jobs.alert_measures import failure_counts
from webapp.monitor.alerting import alert_settings, evaluate
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


def sqlite_jobs_accesses(statement: str, parameters) -> list[str]:
    rows = db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    return [row[3] for row in rows if row[3].startswith(("SCAN jobs", "SEARCH jobs"))]


def postgresql_jobs_accesses(statement: str, parameters) -> list[str]:
    """With sequential and bitmap scans off, how the planner would read the jobs table by an
    index (a Seq Scan only where no index serves the statement at all)."""
    connection = db.session.connection()
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
    (plan,) = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar_one()
    found: list[str] = []

    def walk(node) -> None:
        if node.get("Relation Name") == "jobs":
            found.append(f"{node['Node Type']} using {node.get('Index Name')}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return found


@pytest.mark.parametrize("with_rollups", [False, True])
def test_the_alert_evaluation_reads_jobs_from_covering_indexes_only(app, with_rollups):
    """At 1 M jobs the evaluation's cost was fetching a table row per job it counted (SQLite,
    44 ms a pass): on SQLite each read of the jobs table it makes is answered by an index
    alone. PostgreSQL's planner weighs an index's width against the heap fetches it saves
    and may take a narrower one: there every read is an index range, none a full scan."""
    finished_jobs()
    make_job("running", type="video.encode")
    make_job("queued", type="mail.send", queue="mail")
    if with_rollups:
        while jobs.roll_up(NOW):
            pass
    for kind, subject, threshold, window in (
        ("failure_rate", "*", 0.5, 300),
        ("failure_rate", "queue:gpu", 0.5, 6 * 3600),
        ("queue_latency", "*", 60, None),
        ("no_worker", "*", 1, None),
        ("stalled", "*", 30, None),
        ("schedule_failing", "*", 3, None),
    ):
        alert_rules.add(kind, subject, threshold, window)
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if " jobs" in statement and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        evaluate(NOW + timedelta(minutes=5), alert_settings())
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
        db.session.rollback()
    postgresql = db.engine.dialect.name == "postgresql"
    accesses = {
        statement: (postgresql_jobs_accesses if postgresql else sqlite_jobs_accesses)(statement, parameters)
        for statement, parameters in sent
    }
    db.session.rollback()
    # Failure rates, stalled runs, the schedules with a recent failure; the queues holding queued
    # jobs, then their oldest ready ones; the queued types, then the unserved ones' jobs.
    assert len(accesses) == 7
    for statement, reads in accesses.items():
        assert reads, statement
        covered = [read.startswith("Index") if postgresql else "USING COVERING INDEX" in read for read in reads]
        assert all(covered), (reads, statement)
