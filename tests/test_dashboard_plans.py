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
from sqlalchemy import text

from benchmarks._support import statements_run
from benchmarks.monitor import populate, roll_up
from webapp.server.dashboard import BLUEPRINTS
from webapp.store.extensions import db

from tests.conftest import postgresql_only, test_config

pytestmark = [postgresql_only, pytest.mark.slow]

JOBS = 100_000
RUNNING = 1_000
# populate's bands, by id: running, queued, pending, failed, cancelled, then completed.
JOB_IDS = {"running": 10, "queued": 3_000, "pending": 6_500, "failed": 8_000, "cancelled": 30_000, "completed": 99_000}
SCANNED_TABLES = {"jobs", "job_events"}
HTMX = {"HX-Request": "true"}

# Query strings the pages' own forms and links make, per endpoint (each also requested bare).
QUERY_VARIANTS = {
    "dashboard.job_list": [
        "status=failed",
        "status=pending",
        "status=queued&status=running",
        "type=bench.work",
        "worker=bench-w3",
        "queue=default",
        "schedule=nightly",
        "sort=created_at",
        "sort=created_at&order=asc",
        "sort=updated_at&order=asc",
        "sort=type",
        "sort=status&order=asc",
        "status=failed&sort=updated_at",
    ],
    "dashboard.job_counts": ["type=bench.work", "queue=default"],
    "dashboard.stats": ["window=24h", "window=7d"],
}


@pytest.fixture
def app_config(database_url) -> dict:
    return test_config(database_url, JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=True)  # the endpoint is never called


def sample_arguments(webhook_id: int) -> dict[str, list[Any]]:
    """Values for each path argument a dashboard route takes (a new argument needs an entry)."""
    return {"job_id": list(JOB_IDS.values()), "webhook_id": [webhook_id]}


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


def load_store(client, jobs: int = JOBS, **bands: int) -> int:
    """100,000 jobs (or `jobs`, in populate's `bands`), an event per job and an attempt per
    started one, the monitor's rollups, a schedule and a webhook; ANALYZE.

    Returns the webhook endpoint's id."""
    unbounded = text("SET LOCAL statement_timeout = 0")  # building the store is not a request
    db.session.execute(unbounded)
    populate(jobs, RUNNING, **bands)
    db.session.execute(unbounded)
    db.session.execute(
        text(
            "INSERT INTO job_events (job_id, at, kind, actor, action, from_status, to_status, attempt) "
            "SELECT id, updated_at, 'status', 'worker', 'move', 'queued', status, attempt FROM jobs"
        )
    )
    db.session.execute(
        text(
            "INSERT INTO job_attempts (job_id, number, worker_id, claimed_at, started_at, finished_at, outcome) "
            "SELECT id, 1, worker_id, claimed_at, started_at, finished_at, "
            "CASE WHEN status IN ('completed', 'failed') THEN status END FROM jobs WHERE claimed_at IS NOT NULL"
        )
    )
    db.session.commit()
    roll_up()  # the hourly rollups /stats reads, as the monitor keeps them
    created = client.post(
        "/api/schedules", json={"name": "nightly", "cron": "0 3 * * *", "type": "bench.work", "payload": {}}
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    hook = client.post("/api/webhooks", json={"url": "http://127.0.0.1:9/in", "events": ["job.failed"]})
    assert hook.status_code == 201, hook.get_data(as_text=True)
    db.session.execute(text("ANALYZE"))
    db.session.commit()
    db.session.remove()
    return hook.get_json()["id"]


def dashboard_requests(app, webhook_id: int) -> Iterator[tuple[str, dict]]:
    """Every GET route of the dashboard's blueprints with every sample argument and query string,
    whole and as an HTMX region."""
    blueprints = {blueprint.name for blueprint in BLUEPRINTS}
    samples = sample_arguments(webhook_id)
    adapter = app.url_map.bind("localhost")
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in blueprints and "GET" in (rule.methods or ())
    ]
    assert {"dashboard.job_list", "dashboard.job_page", "dashboard.health"} <= {rule.endpoint for rule in rules}
    for rule in rules:
        missing = set(rule.arguments) - set(samples)
        assert not missing, f"{rule.rule} takes {sorted(missing)}: add sample values to sample_arguments()"
        values_list: list[dict[str, Any]] = [{}]
        for argument in sorted(rule.arguments):
            values_list = [{**values, argument: sample} for values in values_list for sample in samples[argument]]
        for values in values_list:
            path = adapter.build(rule.endpoint, values)
            for query in ["", *QUERY_VARIANTS.get(rule.endpoint, [])]:
                url = f"{path}?{query}" if query else path
                yield url, {}
                yield url, HTMX


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
