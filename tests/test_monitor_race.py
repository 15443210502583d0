"""Two monitors racing over the same store (two replicas, or a cleanup beside the schedule).

On PostgreSQL the advisory lock lets one pass run and the other skip; on
SQLite both run and only the conditional transitions keep them apart. Either
way every job is changed exactly once.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from webapp import create_app, monitor
from webapp.domain.timeutil import utcnow
from webapp.store.extensions import db
from webapp.store.models import JobEvent

from tests.conftest import test_config
from tests.factories import make_job

RACERS = 4


def race(app, now) -> list[dict]:
    """RACERS threads, each with its own app context and connection, all calling run_pass at once."""
    barrier = threading.Barrier(RACERS)
    results: list[dict] = []
    errors: list[BaseException] = []

    def racer() -> None:
        with app.app_context():
            try:
                barrier.wait()
                results.append(monitor.run_pass(now=now))
            except BaseException as error:  # reported by the test thread below
                errors.append(error)

    threads = [threading.Thread(target=racer) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def monitor_changes_per_job() -> Counter:
    return Counter(db.session.scalars(select(JobEvent.job_id).where(JobEvent.actor == "monitor")))


def test_racing_monitors_change_each_orphaned_job_once(app):
    orphaned = [make_job("running").id for _ in range(20)]
    pending = [make_job("pending").id for _ in range(10)]

    results = race(app, utcnow() + timedelta(seconds=3601))

    assert monitor_changes_per_job() == Counter(orphaned + pending)
    acted = sum(len(r["orphaned"]) + len(r["stale_pending"]) for r in results if not r["skipped"])
    assert acted == 30


@pytest.fixture
def postgres_app(postgres_url):
    """The app on PostgreSQL only: the advisory lock is PostgreSQL's."""
    app = create_app(test_config(postgres_url))
    with app.app_context():
        db.create_all()
        tables = ", ".join(table.name for table in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.mark.postgres_only
def test_on_postgresql_a_pass_skips_while_another_replica_holds_the_lock(postgres_app):
    job = make_job("running")
    with db.engine.connect() as other_replica, other_replica.begin():
        other_replica.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": monitor.LOCK_KEY})

        result = monitor.run_pass(now=utcnow() + timedelta(seconds=31))

    assert result["skipped"] is True
    assert monitor_changes_per_job()[job.id] == 0
    assert monitor.run_pass(now=utcnow() + timedelta(seconds=31))["orphaned"] == [job.id]
