"""No dashboard page scans the jobs table: the plan of every statement every page runs.

At 100,000 jobs (built by the dashboard benchmark's own `populate`, with an event and
an attempt per started job) and after ANALYZE, every GET route of the dashboard's
blueprints is requested — whole and as its HTMX region, with the query strings its
filters, sorts and windows produce — while a `before_cursor_execute` listener records
each statement; PostgreSQL then EXPLAINs each one with its own parameters, and a
sequential scan of `jobs` or `job_events` anywhere in a plan fails the test with the
page, the statement and the plan.

The routes come from the app's URL map, so a new dashboard page is checked as soon as
it exists; a route whose path takes an argument this test has no sample value for
fails until one is added to SAMPLE_ARGUMENTS. PostgreSQL only: SQLite's planner has
no such choice to get wrong (it reads an index whenever one serves) and its EXPLAIN
names no sequential scan the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks._support import statements_run
from webapp.store.extensions import db

from tests.conftest import postgresql_only
from tests.support.dashboard_store import dashboard_requests, load_store, store_config

pytestmark = [postgresql_only, pytest.mark.slow]

SCANNED_TABLES = {"jobs", "job_events"}


@pytest.fixture
def app_config(database_url) -> dict:
    return store_config(database_url)


def plan_of(statement: str, parameters: Any) -> dict:
    """PostgreSQL's plan for the statement with these parameters (EXPLAIN only: nothing runs)."""
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        document = cursor.fetchone()[0]
        connection.rollback()
    finally:
        connection.close()
    plan = document if isinstance(document, list) else json.loads(document)
    return plan[0]["Plan"]


def sequential_scans(node: dict) -> Iterator[str]:
    if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in SCANNED_TABLES:
        yield node["Relation Name"]
    for child in node.get("Plans", ()):
        yield from sequential_scans(child)


def test_no_dashboard_query_scans_the_jobs_or_events_table(app):
    client = app.test_client()
    webhook_id = load_store(client)
    offenders = []
    statements = 0
    requests = 0
    for url, headers in dashboard_requests(app, webhook_id):
        with statements_run(db.engine) as seen:
            answer = client.get(url, headers=headers)
        requests += 1
        assert answer.status_code in (200, 302), f"{url} {headers}: {answer.status_code}"
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE", "INSERT")):
                continue
            statements += 1
            plan = plan_of(statement, parameters)
            scanned = sorted(set(sequential_scans(plan)))
            if scanned:
                offenders.append(
                    f"{url} {headers}: Seq Scan on {', '.join(scanned)}\n  {' '.join(statement.split())}\n"
                    f"  {parameters}\n  {json.dumps(plan)[:2000]}"
                )
    assert requests > 40 and statements > requests, (requests, statements)  # the pages did run their queries
    assert not offenders, "\n\n".join(offenders)
