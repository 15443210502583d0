"""`jobwarden db upgrade` builds the whole schema on an empty database, matching the models."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect, select

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
    return subprocess.run(
        [sys.executable, "-m", "webapp", "db", "upgrade", *revision],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "DATABASE_URL": url,
            "JOBWARDEN_MONITOR": "off",
            "JOBWARDEN_INTERNAL_API_KEY": "k",
            "JOBWARDEN_ENV": "testing",
        },
    )


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
    # Alembic cannot compare expression indexes (priority DESC); check those by name.
    assert [d for d in differences if not _is_claim_index(d)] == []
    assert set(CLAIM_INDEXES) <= indexes


CLAIM_INDEXES = ("ix_jobs_claim", "ix_jobs_queue_claim")


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
