"""A claim costs the same with 20 or 20,000 queued jobs in its queue (issue 26, item 7): a
limited claim counts its queue's and keys' live jobs from index entries of live jobs alone, and
every claim updates the rows it picked by primary key, so what it reads does not grow with the
queue's depth. Every limited claimer of a queue waits while one claims (webapp.store.flow), so
this is what the others wait for; a fast claim that walked the queued jobs made every claim of
a deep queue as slow as the queue is long.

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


def add_queued(queue: str, count: int, first: int) -> None:
    jobs.create_jobs(
        [{"type": "t", "queue": queue, "concurrency_key": f"key-{n % KEYS}"} for n in range(first, first + count)]
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


def update_node(plan: dict[str, Any]) -> dict[str, Any] | None:
    """The plan's UPDATE of `jobs`, without its InitPlans (the candidates it updates)."""
    if (
        plan.get("Node Type") == "ModifyTable"
        and plan.get("Operation") == "Update"
        and plan.get("Relation Name") == "jobs"
    ):
        return {
            **plan,
            "Plans": [child for child in plan.get("Plans", []) if child["Parent Relationship"] != "InitPlan"],
        }
    found = [update_node(child) for child in plan.get("Plans", [])]
    return next((node for node in found if node is not None), None)


def postgresql_claim_plan() -> dict[str, Any]:
    """The plan of the claim statement that took the batch, without statistics of the table."""
    db.session.execute(text("DELETE FROM pg_statistic WHERE starelid = 'jobs'::regclass"))
    db.session.commit()
    with statements_run(db.engine) as statements:
        assert len(claim_batch()) == BATCH
    [(statement, parameters)] = [(s, p) for s, p in statements if "UPDATE jobs" in s]
    connection = db.engine.raw_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
            plan = cursor.fetchone()[0][0]["Plan"]
        connection.rollback()
    finally:
        connection.close()
    return plan


@postgresql_only
def test_a_limited_claim_reads_as_much_with_20_or_20000_queued_jobs(app):
    queues.set_limits("work", {"concurrency": 10_000, "key_concurrency": 1}, actor="ops")
    add_queued("work", 30, 0)
    assert len(claim_batch()) == BATCH  # some live jobs for the counts to find
    shallow = jobs_rows_read(postgresql_claim_plan())

    add_queued("work", 19_970, 30)
    deep = jobs_rows_read(postgresql_claim_plan())

    # A count or an update that walked the queue would read thousands more.
    assert deep <= shallow * 1.5 + 100, (shallow, deep)


def rows_handled(plan: dict[str, Any]) -> int:
    """Rows every node of a plan handles: returned, filtered or joined away, in every loop."""
    own = sum(plan.get(key, 0) for key in ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Join Filter"))
    return round(own * plan.get("Actual Loops", 1)) + sum(rows_handled(child) for child in plan.get("Plans", []))


@postgresql_only
def test_a_fast_claims_update_reads_the_queue_at_most_once(app):
    """The UPDATE of a claim without limits reads the rows it picked, not the queue once per
    picked row: joined to its candidates, a planner without statistics of the jobs walked the
    queued jobs and, for each, the batch (37,000 rows handled for a batch of 10 at 2,000
    queued, 6 ms). By primary key from an array it reads the picked rows, or at worst the small
    table once. Left as it is: the candidates' own scan, which without statistics sorts the
    queued jobs instead of reading them in claim order (autovacuum's first ANALYZE of a growing
    table ends that)."""
    depth = 2_000
    add_queued("work", depth, 0)
    update = update_node(postgresql_claim_plan())
    assert update is not None
    assert rows_handled(update) <= 1.5 * depth + 100, rows_handled(update)
