"""A paused or limited queue's backlog costs the claims of other queues nothing.

During an incident an operator pauses a queue, and a GPU queue limited to two runs holds
hundreds of waiting jobs: one scan of the claim order passed over every one of them on each
claim of any other queue (100,000 paused jobs: a one-job claim took 52 ms on PostgreSQL and
33 ms on SQLite instead of 2-6 ms). While such a backlog exists (webapp.store.flow.hints) the
fast part reads each other queue's first jobs as an index range.

The cost is counted, not timed, at 20 and at 20,000 paused jobs: on PostgreSQL the rows of
`jobs` the claim statements read (EXPLAIN ANALYZE, replayed and rolled back), on SQLite the
virtual machine's steps (its progress handler, called every 1,000 instructions)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from benchmarks._support import statements_run
from webapp import jobs
from webapp.jobs import queues
from webapp.store import flow
from webapp.store.extensions import db

from tests.conftest import postgresql_only, sqlite_only
from tests.support.reads import sqlite_steps
from tests.test_flow_claim_cost import jobs_rows_read

OTHER_JOBS = 20


def held_backlog(depth: int, hold: str = "pause", *, first: bool = True) -> None:
    """`depth` queued jobs in the queue `held`, held back by a pause or by a full concurrency
    limit, and jobs of the default queue behind them in claim order (the held ones come first
    by priority)."""
    for start in range(0, depth, 5_000):
        batch = range(start, min(start + 5_000, depth))
        jobs.create_jobs([{"type": "t", "queue": "held", "priority": 1} for _ in batch])
    if first and hold == "pause":
        queues.pause("held", actor="ops", reason="incident")
    elif first:
        queues.set_limits("held", {"concurrency": 1}, actor="ops")
        assert len(jobs.claim_jobs("gpu-box", queues=["held"])) == 1  # its one slot taken
    jobs.create_jobs([{"type": "t"} for _ in range(OTHER_JOBS)])
    flow.limits_changed()


def claim_one() -> None:
    [job] = jobs.claim_jobs("w", batch_size=1, start=True)
    assert job.queue == "default"


def postgresql_rows_read() -> int:
    """Rows of `jobs` one claim's statements read, with the table's statistics fresh."""
    db.session.execute(text("ANALYZE jobs"))
    db.session.commit()
    with statements_run(db.engine) as statements:
        claim_one()
    connection = db.engine.raw_connection()
    total = 0
    try:
        with connection.cursor() as cursor:
            for statement, parameters in statements:
                if "UPDATE jobs" in statement:
                    cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
                    total += jobs_rows_read(cursor.fetchone()[0][0]["Plan"])
                    connection.rollback()
    finally:
        connection.close()
    return total


HOLDS = pytest.mark.parametrize("hold", ["pause", "full_limit"])


@postgresql_only
@HOLDS
def test_a_held_backlog_leaves_claims_of_other_queues_as_cheap_on_postgresql(app, hold):
    held_backlog(20, hold)
    shallow = postgresql_rows_read()
    held_backlog(19_980, hold, first=False)
    deep = postgresql_rows_read()
    # A claim that passed over the paused jobs would read 20,000 more.
    assert deep <= shallow * 1.5 + 200, (shallow, deep)


@sqlite_only
@HOLDS
def test_a_held_backlog_leaves_claims_of_other_queues_as_cheap_on_sqlite(app, hold):
    held_backlog(20, hold)
    jobs.claim_jobs("w", batch_size=1, start=True)  # hints read, statements prepared
    with sqlite_steps() as shallow:
        claim_one()
    held_backlog(19_980, hold, first=False)
    jobs.claim_jobs("w", batch_size=1, start=True)
    with sqlite_steps() as deep:
        claim_one()
    assert deep.total() <= shallow.total() * 1.5 + 20, (shallow, deep)


def test_behind_a_backlog_claims_keep_to_their_types_and_queues_in_claim_order(app):
    held_backlog(flow.BACKLOG_PER_QUEUE)
    assert flow.hints().restricted_backlog
    made = {
        name: jobs.create_jobs([{"type": kind, "queue": queue, "priority": priority}])[0].id
        for name, kind, queue, priority in [
            ("a_x", "x", "a", 0),
            ("a_y", "y", "a", 5),
            ("b_x", "x", "b", 2),
            ("c_x", "x", "c", 9),
        ]
    }

    picked = jobs.claim_jobs("w", types=["x"], queues=["a", "b"], batch_size=10)
    assert [job.id for job in picked] == [made["b_x"], made["a_x"]]

    picked = jobs.claim_jobs("w", batch_size=2)
    assert [job.id for job in picked] == [made["c_x"], made["a_y"]]
    assert {job.queue for job in jobs.claim_jobs("w", batch_size=100)} == {"default"}


@sqlite_only
def test_a_backlog_of_another_type_leaves_a_typed_claim_as_cheap_on_sqlite(app):
    """Workers split by type: a claim of type `u` beside a backlog of type `t` that nobody holds.
    SQLite's statistics average the types (half the queued jobs each), so it walked the claim
    order past every queued `t` to find a `u`: 38 ms a claim at 100,000 (held_backlog.py). It
    now reads the range of `u` in ix_jobs_queued_type, in claim order."""

    def claim_u() -> None:
        [job] = jobs.claim_jobs("w", types=["u"], batch_size=1, start=True)
        assert job.type == "u"

    def backlog(depth: int) -> None:
        for start in range(0, depth, 5_000):
            jobs.create_jobs([{"type": "t", "priority": 1}] * min(5_000, depth - start))
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        claim_u()  # statements prepared, statistics read

    jobs.create_jobs([{"type": "u"}] * 4)
    backlog(20)
    with sqlite_steps() as shallow:
        claim_u()
    backlog(19_980)
    with sqlite_steps() as deep:
        claim_u()
    assert deep.total() <= shallow.total() * 1.5 + 20, (shallow, deep)
