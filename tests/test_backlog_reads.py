"""An incident's pages read what they show, not the backlog.

When workers are down, jobs pile up, and that is when operators open /health, /queues and the
job lists, each polling every few seconds. A read that grows with the queued jobs then slows
every poll of every open page, on the database everyone shares. Three did (at 900,000 queued
on PostgreSQL: /health 186 ms, /queues 150-200 ms, a queued job's page 90 ms):
- which queued types no live worker takes: SELECT DISTINCT over every queued job (for /health
  and for every queued job's `waiting` on a page);
- each queue's depth and oldest wait: one GROUP BY over every queued job;
- /health's recent orphans: every job changed in the last 15 minutes.

Here 90,000 of 100,000 jobs are queued, of a type no live worker takes, and changed a minute
ago; the other statuses hold a few thousand jobs together, so a read of over COUNT_CAP + 1
entries (a capped count) and a margin is a read of the backlog. Every GET route of the
dashboard (whole and as its HTMX region) and the JSON reads beside them are requested; each
SELECT they sent is run again alone, and the index entries and rows of `jobs` it read are
counted (tests/support/reads.py). The store is vacuumed, as autovacuum keeps a real one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from benchmarks._support import statements_run
from benchmarks.monitor import populate, roll_up
from webapp import monitor
from webapp.domain.alerts import DEFAULT_RULES
from webapp.domain.limits import COUNT_CAP
from webapp.domain.timeutil import utcnow
from webapp.jobs.series import sample_queue_depth
from webapp.store.extensions import db
from webapp.store.models import Alert, AlertRule

from tests.conftest import postgresql_only
from tests.support.dashboard_store import dashboard_requests, load_store, store_config
from tests.support.reads import jobs_entries_read

pytestmark = [postgresql_only, pytest.mark.slow]

JOBS = 100_000
BANDS = {"queued": 90_000, "pending": 500, "failed": 1_000, "cancelled": 1_000}  # benchmarks.monitor's populate
# Running jobs gone silent, which the pass orphans: each orphan's statements repeat the same few
# shapes (1,000 of them took a minute of a loaded full run, without reading more per statement).
SILENT_RUNNING = 50
READ_BOUND = COUNT_CAP + 1 + 2_000
API_READS = ["/api/health", "/api/queues", "/api/jobs?status=queued", "/api/jobs/3000"]


@pytest.fixture
def app_config(database_url) -> dict:
    return store_config(database_url)


def backlog_store(client) -> int:
    """load_store's store of 100,000 jobs, 90,000 of them queued (`bench.other`), live workers that
    take only `bench.work`, and a few orphaned attempts; vacuumed. Returns the webhook's id."""
    webhook_id = load_store(client, JOBS, **BANDS)
    db.session.execute(text("""UPDATE workers SET types = '["bench.work"]'"""))
    db.session.execute(
        text(
            "UPDATE job_attempts SET outcome = 'orphaned', finished_at = now() AT TIME ZONE 'UTC' "
            "WHERE job_id IN (SELECT id FROM jobs WHERE status = 'failed' ORDER BY id LIMIT 3)"
        )
    )
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return webhook_id


def entries_read(statement: str, parameters: Any) -> int:
    """What the statement reads of `jobs` when run alone (no parallel workers, whose reads the
    transaction's statistics leave out)."""
    try:
        db.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        before = jobs_entries_read()
        db.session.connection().exec_driver_sql(statement, parameters)
        return jobs_entries_read() - before
    finally:
        db.session.rollback()


def test_no_page_of_a_backlog_reads_the_backlog(app):
    client = app.test_client()
    webhook_id = backlog_store(client)
    requests = [*dashboard_requests(app, webhook_id), *((path, {}) for path in API_READS)]
    heaviest: dict[str, tuple[int, str]] = {}
    statements = 0
    for url, headers in requests:
        with statements_run(db.engine) as seen:
            answer = client.get(url, headers=headers)
        assert answer.status_code in (200, 302), f"{url} {headers}: {answer.status_code}"
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            statements += 1
            read = entries_read(statement, parameters)
            if read > READ_BOUND and read > heaviest.get(url, (0, ""))[0]:
                heaviest[url] = (read, " ".join(statement.split())[:400])
    assert statements > len(requests)  # the pages did run their queries
    offenders = [f"{url}: read {read:,} entries of jobs\n  {statement}" for url, (read, statement) in heaviest.items()]
    assert not offenders, "\n\n".join(offenders)


def test_a_monitor_pass_during_a_backlog_reads_what_it_decides(app):
    """The monitor's pass is what notices a dead worker, every few seconds, outages included.
    With the rules a fresh install watches (the migrations seed them), each pass read every
    queued job four times: once for queue_latency and no_worker together (one GROUP BY), three
    times for the queue depth sample (per queue, per type, in all). At 900,000 queued a pass
    took 550-820 ms against 15-20 ms. Now a pass reads a few index entries per queue and type,
    and the unserved type's jobs up to COUNT_CAP; the depth sample counts the queued jobs once a
    minute (this minute's is taken first, as the minute's first pass takes it), in one read.
    The pages' store without what only pages read (events, attempts, a schedule, a webhook),
    its finished hours rolled up as earlier passes left them."""
    populate(JOBS, SILENT_RUNNING, **BANDS)
    roll_up()
    db.session.execute(text("""UPDATE workers SET types = '["bench.work"]'"""))
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE jobs"))
    assert {rule.kind for rule in db.session.scalars(select(AlertRule))} == {rule.kind for rule in DEFAULT_RULES}
    now = utcnow()
    sample_queue_depth(now, keep=timedelta(days=1))
    db.session.commit()
    with statements_run(db.engine) as seen:
        result = monitor.run_pass(now=now)
    fired = db.session.execute(
        select(AlertRule.kind, Alert.subject)
        .join(Alert, Alert.rule_id == AlertRule.id)
        .where(Alert.id.in_(result["alerts"]["fired"]))
    ).all()
    assert fired == [("no_worker", "bench.other")]  # which no live worker takes
    reads: dict[str, int] = {}
    for statement, parameters in seen:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            shown = " ".join(statement.split())[:300]
            reads[shown] = max(reads.get(shown, 0), entries_read(statement, parameters))
    assert any("jobs" in statement for statement in reads)
    offenders = {statement: read for statement, read in reads.items() if read > READ_BOUND}
    assert not offenders, offenders


BEHIND_BACKLOG = [
    "/jobs?status=completed",
    "/jobs?status=completed&sort=updated_at",
    "/jobs?status=completed&sort=created_at&order=asc",
    "/jobs?status=failed",
    "/jobs?status=completed&status=failed",
    "/jobs/counts",
    "/jobs/counts?queue=default",
    "/api/jobs?status=completed&limit=100",
    "/api/jobs?status=failed",
]


def test_the_jobs_behind_a_backlog_are_read_from_their_own_index(app):
    """After an outage the backlog holds the newest ids, the finished jobs the older ones: a page
    or a capped count of one status reads that status's index range, not the backlog's ids in
    between. (In id order, PostgreSQL took the primary key and filtered, as if the status's
    jobs were spread evenly: here the completed pages and counts read the 40,000 queued jobs.)"""
    client = app.test_client()
    populate(100_000, 0, queued=40_000, pending=0, failed=1_000, cancelled=1_000)  # 58,000 completed
    db.session.execute(text("UPDATE jobs SET id = id + 100000 WHERE status = 'queued'"))  # the newest
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    heaviest: dict[str, tuple[int, str]] = {}
    for url in BEHIND_BACKLOG:
        for headers in ({}, {"HX-Request": "true"}):
            with statements_run(db.engine) as seen:
                answer = client.get(url, headers=headers)
            assert answer.status_code == 200, f"{url}: {answer.status_code}"
            for statement, parameters in seen:
                if statement.lstrip().upper().startswith(("SELECT", "WITH")):
                    read = entries_read(statement, parameters)
                    if read > READ_BOUND and read > heaviest.get(url, (0, ""))[0]:
                        heaviest[url] = (read, " ".join(statement.split())[:400])
    offenders = [f"{url}: read {read:,} entries of jobs\n  {statement}" for url, (read, statement) in heaviest.items()]
    assert not offenders, "\n\n".join(offenders)
