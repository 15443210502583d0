"""A limited claim costs the same with 20 or 20,000 queued jobs in its queue (issue 26, item 7):
it counts its queue's and keys' live jobs from index entries of live jobs alone and updates
the rows it picked by primary key, so what it reads does not grow with the queue's depth. Every limited
claimer of a queue waits while one claims (webapp.store.flow), so this is what the others wait for.

Measured on PostgreSQL as a fresh database meets it, before autovacuum's first ANALYZE of the
jobs table (the benchmarks' case): its statistics are removed first. The cost is counted, not
timed: the rows of `jobs` the claim statement read (EXPLAIN ANALYZE of the statement, replayed
and rolled back). SQLite takes the same indexes with or without statistics; its limited claims
take turns on the database's write lock anyway."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from benchmarks._support import statements_run
from webapp import jobs
from webapp.jobs import queues
from webapp.store import transitions
from webapp.store.extensions import db
from webapp.store.transaction import unit_of_work

from tests.conftest import postgresql_only

KEYS = 100
BATCH = 10


def add_queued(count: int, first: int) -> None:
    jobs.create_jobs(
        [{"type": "t", "queue": "limited", "concurrency_key": f"key-{n % KEYS}"} for n in range(first, first + count)]
    )


def claim_batch() -> list[int]:
    with unit_of_work():
        return [job.id for job in transitions.claim("w", batch_size=BATCH)]


def jobs_rows_read(plan: dict[str, Any]) -> int:
    """Rows of `jobs` a plan's nodes read: returned or filtered out, in every loop."""
    own = 0
    if plan.get("Relation Name") == "jobs":
        own = (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * plan.get("Actual Loops", 1)
    return round(own) + sum(jobs_rows_read(child) for child in plan.get("Plans", []))


def postgresql_claim_cost() -> int:
    """Rows of `jobs` the limited claim statement reads, without statistics of the table."""
    db.session.execute(text("DELETE FROM pg_statistic WHERE starelid = 'jobs'::regclass"))
    db.session.commit()
    with statements_run(db.engine) as statements:
        assert len(claim_batch()) == BATCH
    [(statement, parameters)] = [(s, p) for s, p in statements if "counted AS MATERIALIZED" in s]
    connection = db.engine.raw_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
            plan = cursor.fetchone()[0][0]["Plan"]
        connection.rollback()
    finally:
        connection.close()
    return jobs_rows_read(plan)


@postgresql_only
def test_a_limited_claim_reads_as_much_with_20_or_20000_queued_jobs(app):
    queues.set_limits("limited", {"concurrency": 10_000, "key_concurrency": 1}, actor="ops")
    add_queued(30, 0)
    assert len(claim_batch()) == BATCH  # some live jobs for the counts to find
    shallow = postgresql_claim_cost()

    add_queued(19_970, 30)
    deep = postgresql_claim_cost()

    # A count or an update that walked the queue would read thousands more.
    assert deep <= shallow * 1.5 + 100, (shallow, deep)
