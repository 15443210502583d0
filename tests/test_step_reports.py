"""Recording a step report costs the same with 10 or 2,010 earlier step events of the
attempt (issue 24, item 6): the report's identity is found through the unique index
`uq_job_events_report`, not by reading the attempt's events. The cost is counted, not
timed: SQLite's virtual-machine instructions, and on PostgreSQL the rows each statement
read, from EXPLAIN ANALYZE of the statements the report ran."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any

import pytest
from sqlalchemy import insert

from benchmarks._support import statements_run
from webapp import jobs
from webapp.domain.limits import MAX_REPORTS_PER_BATCH
from webapp.domain.timeutil import utcnow
from webapp.jobs import steps
from webapp.store.extensions import db
from webapp.store.models import JobEvent
from webapp.store.step_reports import report_key

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}


@pytest.fixture
def running_job(app) -> tuple[int, str]:
    make_job("queued")
    [claimed] = jobs.claim_jobs("w1")
    jobs.start_job(claimed.id, claimed.lease_token)
    return claimed.id, claimed.lease_token


def add_earlier_step_events(job_id: int, count: int, start: int = 0) -> None:
    now = utcnow()
    rows = [
        {
            "job_id": job_id,
            "at": now,
            "kind": "step",
            "actor": "worker:w1",
            "attempt": 1,
            "data": {"name": f"earlier-{n}", "event": "started"},
            "report_key": report_key(f"earlier-{n}", "started", None),
        }
        for n in range(start, start + count)
    ]
    db.session.execute(insert(JobEvent), rows)
    db.session.commit()


def sqlite_instructions(report: Callable[[], object]) -> int:
    """SQLite virtual-machine instructions the report ran (its work, whatever the machine's speed)."""
    connection = db.session.connection().connection.dbapi_connection
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0  # go on

    connection.set_progress_handler(count, 1)
    try:
        report()
    finally:
        with suppress(sqlite3.ProgrammingError):  # closed at the report's commit: nothing to undo
            connection.set_progress_handler(None, 1)
    return counted[0]


def postgresql_rows_read(statements: list[tuple[str, Any]]) -> tuple[int, str]:
    """Rows the statements on job_events read, replayed under EXPLAIN ANALYZE and rolled back."""
    total, plans = 0, ""
    connection = db.engine.raw_connection()
    try:
        with connection.cursor() as cursor:
            for statement, parameters in statements:
                if "job_events" not in statement:
                    continue
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
                plan = cursor.fetchone()[0][0]["Plan"]
                plans += json.dumps(plan)
                total += _rows_read(plan)
        connection.rollback()
    finally:
        connection.close()
    return total, plans


def _rows_read(plan: dict[str, Any]) -> int:
    own = 0
    if "Relation Name" in plan and plan["Relation Name"] == "job_events":
        own = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
    return own + sum(_rows_read(child) for child in plan.get("Plans", []))


def test_a_step_report_costs_the_same_with_10_or_2010_earlier_events(backend, running_job):
    job_id, token = running_job
    costs = []
    for earlier, name in ((10, "upload"), (2000, "publish")):
        add_earlier_step_events(job_id, earlier, start=len(costs) * 10)
        report = partial(jobs.record_step, job_id, token, name=name, event="started")
        with statements_run(db.engine) as statements:
            if backend == "sqlite":
                cost = sqlite_instructions(report)
            else:
                report()
                cost, plans = postgresql_rows_read(statements)
                assert "uq_job_events_report" in plans  # the insert's conflict check is the unique index
        assert not [s for s, _ in statements if s.lstrip().upper().startswith("SELECT") and "job_events" in s]
        costs.append(cost)

    few, many = costs
    assert many <= few * 1.1 + 10, costs  # with a scan, 2,000 more events cost thousands more
    assert [e.data["name"] for e in jobs.events_of(job_id) if e.kind == "step"][-1] == "publish"


def test_a_report_sent_again_adds_no_event_and_does_not_replace_the_stored_result(running_job):
    job_id, token = running_job
    jobs.record_step(job_id, token, name="fetch", event="completed", result={"bytes": 1})
    jobs.record_step(job_id, token, name="fetch", event="completed", result={"bytes": 2})
    jobs.record_step(job_id, token, name="fetch", event="retrying", step_attempt=2, error="timeout")
    jobs.record_step(job_id, token, name="fetch", event="retrying", step_attempt=2, error="timeout")

    events = [(e.data["event"], e.report_key) for e in jobs.events_of(job_id) if e.kind == "step"]
    assert events == [("completed", "completed//fetch"), ("retrying", "retrying/2/fetch")]
    assert steps.results_of(job_id)["fetch"].result == {"bytes": 1}


def test_a_batch_over_the_cap_is_refused_whole_before_it_takes_the_write_lock(client, running_job):
    job_id, token = running_job
    item = {"kind": "step", "job_id": job_id, "lease_token": token, "event": "started"}
    items = [{**item, "name": f"s{n}"} for n in range(MAX_REPORTS_PER_BATCH + 1)]

    refused = client.post("/api/internal/reports", json={"items": items}, headers=KEY)
    accepted = client.post("/api/internal/reports", json={"items": items[:-1]}, headers=KEY)

    assert refused.status_code == 400 and refused.get_json()["field"] == "items", refused.get_json()
    codes = [r["code"] for r in accepted.get_json()["results"]]
    # Each applied, or (on a machine slow enough to pass the batch's time budget) the rest deferred.
    applied = codes.count(200)
    assert applied and codes == [200] * applied + [503] * (MAX_REPORTS_PER_BATCH - applied), codes
