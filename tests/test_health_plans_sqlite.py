"""/health on SQLite reads ranges of indexes, not the jobs table, at any size.

Its note of the jobs stopping (an ended attempt whose lease still runs) read its range of
ix_jobs_updated in id order; SQLite walked the whole table by its primary key instead and
filtered: 230 ms of /health's 250 at 1,000,000 jobs. Here every statement /health's report sends
is planned by SQLite (EXPLAIN QUERY PLAN) on an analyzed store, and none may scan `jobs`."""

from __future__ import annotations

import pytest

from benchmarks._support import statements_run
from benchmarks.monitor import populate
from webapp import monitor
from webapp.store.extensions import db

from tests.conftest import sqlite_only
from tests.support.dashboard_store import store_config


@pytest.fixture
def app_config(database_url) -> dict:
    return store_config(database_url)


@sqlite_only
def test_the_health_report_scans_no_jobs_table_on_sqlite(app):
    populate(50_000, 100)
    with statements_run(db.engine) as seen:
        monitor.health_report()
    accesses = {}
    for statement, parameters in seen:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and "jobs" in statement:
            plan = db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            accesses[" ".join(statement.split())[:200]] = [row[3] for row in plan if row[3].startswith("SCAN jobs")]
    db.session.rollback()
    assert accesses, "the report read no jobs"
    assert not {statement: scans for statement, scans in accesses.items() if scans}
