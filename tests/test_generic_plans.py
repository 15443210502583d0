"""A claim reads as much under PostgreSQL's generic plans as under plans made for its values.

psycopg prepares a statement from its fifth run, and PostgreSQL may then keep one generic plan
for any values. The claim's indexes hold the queued jobs alone (WHERE status = 'queued'), which
a generic plan can use only when the status is written into the statement's text
(webapp.store.queued_sql): bound, a limited claim read every queued job of its queue twice
(5.8 ms a claim at 6,000 queued). Every claimer runs on generic plans within seconds, so this
is how claims run; here every statement is prepared at once and planned generically.

Counted, not timed: the index entries of `jobs` the claim read (tests/support/reads.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import psycopg
import pytest
from sqlalchemy import text

from webapp import jobs
from webapp.jobs import queues
from webapp.store import flow, transitions
from webapp.store.extensions import db
from webapp.store.transaction import unit_of_work

from tests.conftest import postgresql_only
from tests.support.reads import jobs_entries_read

QUEUED = 3_000  # more than flow.BACKLOG_PER_QUEUE: a limited queue's backlog is read queue by queue
BATCH = 10


@contextmanager
def generic_plans() -> Iterator[None]:
    """A unit of work whose every statement is prepared at once and planned generically."""
    with unit_of_work():
        dbapi = cast(psycopg.Connection[Any], db.session.connection().connection.dbapi_connection)
        dbapi.prepare_threshold = 0
        try:
            db.session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
            yield
        finally:
            dbapi.prepare_threshold = psycopg.Connection.prepare_threshold


def claim_under_generic_plans(batch_size: int) -> tuple[int, int]:
    """(jobs claimed, index entries and table rows of `jobs` read) for one claim on generic plans."""
    with generic_plans():
        flow.hints()  # read once a second, up to flow.BACKLOG_PER_QUEUE queued jobs: not the claim's cost
        before = jobs_entries_read()
        claimed = transitions.claim("w", batch_size=batch_size)
        read = jobs_entries_read() - before
    return len(claimed), read


@postgresql_only
@pytest.mark.parametrize("limits", [None, {"key_concurrency": 1}, {"concurrency": 10_000, "key_concurrency": 1}])
@pytest.mark.parametrize("batch_size", [1, BATCH])
def test_a_claim_on_generic_plans_reads_the_jobs_it_takes_not_the_queue(app, limits, batch_size):
    if limits:
        queues.set_limits("work", limits, actor="ops")
    jobs.create_jobs([{"type": "t", "queue": "work", "concurrency_key": f"key-{n % 100}"} for n in range(QUEUED)])
    # With statistics, as autovacuum keeps them: a planner without them reads a small table
    # whole to update ten of its rows, which is not what this test is about.
    db.session.execute(text("ANALYZE jobs"))
    db.session.commit()

    claimed, read = claim_under_generic_plans(batch_size)

    assert claimed == batch_size
    # Reading the queue (its queued jobs' index entries, or the table) is thousands more.
    assert read <= 200, read


@postgresql_only
@pytest.mark.parametrize("claimer", [{"types": ["other"]}, {"queues": ["empty"]}, {"types": ["t", "other"]}])
@pytest.mark.parametrize("batch_size", [1, BATCH])
def test_a_claimer_of_other_types_or_queues_does_not_read_the_backlog(app, claimer, batch_size):
    """A worker of a type or queue with nothing queued, beside a backlog of others. Bound as
    parameters, its types and queues were unknown to the generic plan, which read the claim
    order and filtered: every queued job of the backlog (200-470 ms a claim at 900,000)."""
    jobs.create_jobs([{"type": "t", "queue": "work"} for _ in range(QUEUED)])
    db.session.execute(text("ANALYZE jobs"))
    db.session.commit()
    with generic_plans():
        before = jobs_entries_read()
        claimed = transitions.claim("w", batch_size=batch_size, **claimer)
        read = jobs_entries_read() - before
    assert len(claimed) == (batch_size if claimer.get("types") == ["t", "other"] else 0)
    assert read <= 200, read


@postgresql_only
def test_the_flow_hints_read_no_job_while_no_queue_is_paused_or_limited(app):
    """Read once a second by every process that claims. As `queue IN (paused or limited
    queues)` on the jobs, a generic plan read every queued job to find none."""
    jobs.create_jobs([{"type": "t", "queue": "work"} for _ in range(QUEUED)])
    db.session.execute(text("ANALYZE jobs"))
    db.session.commit()

    with generic_plans():
        before = jobs_entries_read()
        flow.limits_changed()
        hints = flow.hints()
        read = jobs_entries_read() - before

    assert hints == flow.FlowHints(limits_in_use=False, restricted_backlog=False)
    assert read == 0, read


@pytest.mark.parametrize("name", ["it's", "back\\slash", "'; DROP TABLE jobs; --", "ünï ☃"])
def test_a_claimer_names_any_type_and_queue_written_into_the_text(app, name):
    """The claimer's names are quoted where they are written into the statement."""
    made = jobs.create_job(type=name, queue=name)
    jobs.create_job(type="other")
    with unit_of_work():
        claimed = transitions.claim("w", types=[name], queues=[name], batch_size=10)
    assert [job.id for job in claimed] == [made.id]
    assert jobs.get_job(made.id).status == "claimed"
