"""`jobwarden db upgrade` builds the whole schema on an empty database, matching the models."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, create_engine, inspect, select, text

from webapp.store.extensions import db
from webapp.store.step_reports import report_key

from tests.conftest import BACKENDS
from tests.support.databases import postgres_test_database

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=BACKENDS)
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        with postgres_test_database(os.environ["JOBWARDEN_TEST_POSTGRES_URL"]) as url:
            yield url


def upgrade(url: str, *revision: str) -> subprocess.CompletedProcess:
    return subprocess.run(db_command("upgrade", *revision), capture_output=True, text=True, timeout=120, **db_env(url))


def downgrade(url: str, revision: str) -> subprocess.CompletedProcess:
    return subprocess.run(db_command("downgrade", revision), capture_output=True, text=True, timeout=120, **db_env(url))


def db_command(*command: str) -> list[str]:
    return [sys.executable, "-m", "webapp", "db", *command]


def db_env(url: str) -> dict:
    return {
        "cwd": PROJECT_ROOT,
        "env": {
            **os.environ,
            "DATABASE_URL": url,
            "JOBWARDEN_MONITOR": "off",
            "JOBWARDEN_INTERNAL_API_KEY": "k",
            "JOBWARDEN_ENV": "testing",
        },
    }


def test_db_upgrade_builds_a_schema_that_matches_the_models(empty_database):
    result = upgrade(empty_database)
    assert result.returncode == 0, result.stderr

    engine = create_engine(empty_database)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
            indexes = {ix["name"] for ix in inspect(connection).get_indexes("jobs")}
    finally:
        engine.dispose()
    # Alembic cannot compare expression indexes (priority DESC): the claim orders; check those by name.
    assert [d for d in differences if not _is_claim_index(d)] == []
    assert set(CLAIM_INDEXES) <= indexes


CLAIM_INDEXES = ("ix_jobs_claim", "ix_jobs_queue_claim", "ix_jobs_queued_type")


def _is_claim_index(difference) -> bool:
    return difference[0] in ("add_index", "remove_index") and difference[1].name in CLAIM_INDEXES


def test_db_upgrade_twice_changes_nothing(empty_database):
    assert upgrade(empty_database).returncode == 0
    second = upgrade(empty_database)
    assert second.returncode == 0, second.stderr
    assert "Running upgrade" not in second.stderr


def test_the_step_report_migration_keys_the_earliest_copy_of_each_report(empty_database):
    """0008 gives each step event its report's identity; a copy the old read-then-write
    check let through under a race keeps none, so the unique index can be built."""
    assert upgrade(empty_database, "0007").returncode == 0
    engine = create_engine(empty_database)
    try:
        tables = MetaData()
        tables.reflect(engine, only=["jobs", "job_events"])
        jobs, events = tables.tables["jobs"], tables.tables["job_events"]
        now = datetime(2026, 12, 1)
        step = {"job_id": 1, "at": now, "kind": "step", "actor": "worker:w", "attempt": 1}
        with engine.begin() as connection:
            connection.execute(
                jobs.insert().values(
                    id=1,
                    type="t",
                    status="running",
                    priority=0,
                    attempt=1,
                    max_attempts=3,
                    run_after=now,
                    created_at=now,
                    updated_at=now,
                    cancel_requested=False,
                )
            )
            connection.execute(
                events.insert(),
                [
                    {**step, "data": {"name": "fetch", "event": "started"}},
                    {**step, "data": {"name": "fetch", "event": "retrying", "step_attempt": 2}},
                    {**step, "data": {"name": "fetch", "event": "retrying", "step_attempt": 2}},  # the race's copy
                    {**step, "kind": "status", "data": None},
                ],
            )
        result = upgrade(empty_database)
        assert result.returncode == 0, result.stderr
        tables = MetaData()
        tables.reflect(engine, only=["job_events"])
        events = tables.tables["job_events"]
        with engine.connect() as connection:
            keys = connection.execute(select(events.c.report_key).order_by(events.c.id)).scalars().all()
    finally:
        engine.dispose()
    assert keys == [
        report_key("fetch", "started", None),
        report_key("fetch", "retrying", 2),
        None,
        None,
    ]


def test_the_hours_rolled_up_before_the_wait_rollups_are_counted_into_them(empty_database):
    """0013 began job_wait_rollups empty; 0016 counts the hours rolled up before it from the
    jobs table, and leaves the hours 0013's roll-up wrote as they are."""
    assert upgrade(empty_database, "0012").returncode == 0
    engine = create_engine(empty_database)
    hour = datetime(2026, 12, 1, 10)
    try:
        tables = MetaData()
        tables.reflect(engine, only=["jobs", "rollup_progress"])
        jobs, progress = tables.tables["jobs"], tables.tables["rollup_progress"]
        finished = [  # (queue, status, finished_at): two hours rolled up before 0013, one after
            ("default", "completed", hour.replace(minute=5)),
            ("default", "failed", hour.replace(minute=59)),
            ("gpu", "failed", hour.replace(hour=11, minute=30)),
            ("gpu", "completed", hour.replace(hour=12, minute=1)),
        ]
        with engine.begin() as connection:
            for number, (queue, status, at) in enumerate(finished, start=1):
                connection.execute(
                    jobs.insert().values(
                        id=number,
                        type="t",
                        queue=queue,
                        status=status,
                        priority=0,
                        attempt=1,
                        max_attempts=1,
                        run_after=at,
                        created_at=at,
                        updated_at=at,
                        finished_at=at,
                        cancel_requested=False,
                    )
                )
            connection.execute(progress.insert().values(id=1, rolled_up_to=hour.replace(hour=12)))
        assert upgrade(empty_database, "0015").returncode == 0
        tables = MetaData()
        tables.reflect(engine, only=["job_wait_rollups"])
        waits = tables.tables["job_wait_rollups"]
        later = {"hour": hour.replace(hour=12), "type": "t", "queue": "gpu", "status": "completed", "bucket": -1}
        with engine.begin() as connection:  # what 0013's roll-up wrote for the 12:00 hour
            connection.execute(waits.insert().values(**later, jobs=7))
        result = upgrade(empty_database)
        assert result.returncode == 0, result.stderr
        with engine.connect() as connection:
            rows = connection.execute(
                select(waits.c.hour, waits.c.queue, waits.c.status, waits.c.jobs).order_by(
                    waits.c.hour, waits.c.queue, waits.c.status
                )
            ).all()
    finally:
        engine.dispose()
    assert [(row.hour.hour, row.queue, row.status, row.jobs) for row in rows] == [
        (10, "default", "completed", 1),
        (10, "default", "failed", 1),
        (11, "gpu", "failed", 1),
        (12, "gpu", "completed", 7),
    ]


# 0017's indexes as each side of it leaves them: name -> columns.
INDEXES_BEFORE_0017 = {
    "ix_jobs_status_finished": ["status", "finished_at"],
    "ix_jobs_status_heartbeat": ["status", "heartbeat_at"],
}
INDEXES_AFTER_0017 = {
    "ix_jobs_status_finished": ["status", "finished_at", "type", "queue"],
    "ix_jobs_status_heartbeat": ["status", "heartbeat_at", "type", "started_at"],
    "ix_jobs_queued_ready": ["status", "queue", "run_after", "type"],
    "ix_jobs_scheduled_finished": ["status", "finished_at", "schedule"],
}


def jobs_indexes(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = {ix["name"]: ix["column_names"] for ix in inspect(connection).get_indexes("jobs")}
            if engine.dialect.name == "postgresql":  # a concurrent build that failed leaves an invalid index
                invalid = connection.execute(
                    text("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid")
                ).scalars()
                assert list(invalid) == []
    finally:
        engine.dispose()
    return {name: columns for name, columns in found.items() if name in INDEXES_AFTER_0017}


def test_0017_upgrades_and_downgrades_and_upgrades_again(empty_database):
    """0017 (its indexes built CONCURRENTLY on PostgreSQL, outside the migration's
    transaction) goes up, down to 0016 and up again, each time with the indexes it names."""
    assert upgrade(empty_database, "0016").returncode == 0
    assert jobs_indexes(empty_database) == INDEXES_BEFORE_0017
    result = upgrade(empty_database)
    assert result.returncode == 0, result.stderr
    assert jobs_indexes(empty_database) == INDEXES_AFTER_0017
    result = downgrade(empty_database, "0016")
    assert result.returncode == 0, result.stderr
    assert jobs_indexes(empty_database) == INDEXES_BEFORE_0017
    result = upgrade(empty_database)
    assert result.returncode == 0, result.stderr
    assert jobs_indexes(empty_database) == INDEXES_AFTER_0017


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL only: SQLite has one writer anyway")
def test_0017_lets_writes_to_jobs_through_while_it_builds_on_postgresql(tmp_path):
    """While 0017 builds its indexes, other sessions still write jobs. A transaction that
    wrote a job and stays open holds the build back (any build waits for it); a plain
    CREATE or DROP INDEX then queues a lock on `jobs` that every other writer queues
    behind, so a second session's insert waits too (here: fails on its lock_timeout). A
    concurrent build takes no lock that writers wait for: the insert goes through."""
    with postgres_test_database(os.environ["JOBWARDEN_TEST_POSTGRES_URL"]) as url:
        assert upgrade(url, "0016").returncode == 0
        engine = create_engine(url)
        jobs = Table("jobs", MetaData(), autoload_with=engine)
        open_writer = engine.connect()
        migration = None
        try:
            open_writer.begin()
            open_writer.execute(jobs.insert().values(**_job_row(1)))
            migration = subprocess.Popen(
                db_command("upgrade", "0017"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                **db_env(url),
            )
            _wait_until_the_migration_waits(engine, migration)
            with engine.connect() as other:
                other.execute(text("SET lock_timeout = '5s'"))
                other.execute(jobs.insert().values(**_job_row(2)))
                other.commit()
            open_writer.rollback()
            output, _ = migration.communicate(timeout=120)
            assert migration.returncode == 0, output
        finally:
            open_writer.close()
            if migration is not None and migration.poll() is None:
                migration.kill()
                migration.wait()
            engine.dispose()
        assert jobs_indexes(url) == INDEXES_AFTER_0017


def _job_row(number: int) -> dict:
    at = datetime(2026, 12, 1, 10)
    return {
        "id": number,
        "type": "t",
        "status": "queued",
        "priority": 0,
        "attempt": 0,
        "max_attempts": 1,
        "run_after": at,
        "created_at": at,
        "updated_at": at,
        "cancel_requested": False,
    }


def _wait_until_the_migration_waits(engine, migration: subprocess.Popen) -> None:
    """Until the migration's session waits for a lock (the open transaction's), in this database."""
    deadline = time.monotonic() + 60  # a bound on a hang, not a speed check
    while time.monotonic() < deadline:
        assert migration.poll() is None, migration.communicate()[0]
        with engine.connect() as connection:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the migration never waited for the open transaction")


def test_0023_counts_a_schedules_next_fire_again_as_cron_reads_the_day_of_week(empty_database):
    """A schedule made before 0023 with "0 9 * * 1" had a Tuesday stored as its next fire
    (APScheduler 3 read 1 as Tuesday); after the upgrade its next fire is a Monday at 09:00.
    One whose day of week is * and a paused one keep theirs."""
    assert upgrade(empty_database, "0022").returncode == 0
    engine = create_engine(empty_database)
    tuesday = datetime(2030, 1, 1, 9)  # a Tuesday, in the future: as the old code stored it
    try:
        tables = MetaData()
        tables.reflect(engine, only=["schedules"])
        schedules = tables.tables["schedules"]
        made = datetime(2026, 12, 1)
        common = {
            "type": "report", "timezone": "UTC", "priority": 0, "queue": "default", "misfire": "run_once",
            "overlap": "allow", "next_fire_at": tuesday, "due_at": tuesday, "source": "api",
            "missing_from_code": False, "created_at": made, "updated_at": made,
        }  # fmt: skip
        with engine.begin() as connection:
            connection.execute(
                schedules.insert(),
                [
                    {**common, "name": "monday", "cron": "0 9 * * 1", "paused": False},
                    {**common, "name": "daily", "cron": "0 9 * * *", "paused": False},
                    {**common, "name": "paused", "cron": "0 9 * * 1", "paused": True},
                ],
            )
        result = upgrade(empty_database)
        assert result.returncode == 0, result.stderr
        with engine.connect() as connection:
            rows = connection.execute(select(schedules.c.name, schedules.c.next_fire_at, schedules.c.due_at)).all()
    finally:
        engine.dispose()
    by_name = {name: (next_fire, due) for name, next_fire, due in rows}
    monday, due = by_name["monday"]
    assert monday == due and monday.strftime("%A %H:%M") == "Monday 09:00"
    assert timedelta(0) < monday - datetime.now(UTC).replace(tzinfo=None) <= timedelta(days=7)
    assert by_name["daily"] == (tuesday, tuesday) and by_name["paused"] == (tuesday, tuesday)
