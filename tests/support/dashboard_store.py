"""The dashboard's store at scale and every request its pages take, for the tests that read what
each page's statements cost (tests/test_dashboard_plans.py, test_backlog_reads.py,
test_dashboard_steps_sqlite.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import text

from benchmarks.monitor import populate, roll_up
from webapp.server.dashboard import BLUEPRINTS
from webapp.store.extensions import db

from tests.conftest import test_config

JOBS = 100_000
RUNNING = 1_000
# populate's bands, by id: running, queued, pending, failed, cancelled, then completed.
JOB_IDS = {"running": 10, "queued": 3_000, "pending": 6_500, "failed": 8_000, "cancelled": 30_000, "completed": 99_000}
HTMX = {"HX-Request": "true"}
# pytest-flask runs each test inside a GET request's context, where the app bounds every
# transaction of the session (webapp.server.query_time). Building a store of 100,000 jobs is no
# request: on a loaded machine it ran past the 10 s default and was cut (sqlite3 "interrupted").
BUILDING_TIMEOUT_S = 3600.0


def store_config(database_url: str) -> dict[str, Any]:
    """The app's settings for a test that builds a store at scale and requests its pages."""
    return test_config(
        database_url,
        JOBWARDEN_QUERY_TIMEOUT_S=BUILDING_TIMEOUT_S,
        JOBWARDEN_WEBHOOK_ALLOW_PRIVATE=True,  # the webhook's endpoint is never called
    )


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


def sample_arguments(webhook_id: int) -> dict[str, list[Any]]:
    """Values for each path argument a dashboard route takes (a new argument needs an entry)."""
    return {"job_id": list(JOB_IDS.values()), "webhook_id": [webhook_id]}


def load_store(client, jobs: int = JOBS, **bands: int) -> int:
    """100,000 jobs (or `jobs`, in populate's `bands`), an event per job and an attempt per
    started one, the monitor's rollups, a schedule and a webhook; ANALYZE.

    Returns the webhook endpoint's id."""
    populate(jobs, RUNNING, **bands)
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
