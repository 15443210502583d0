"""When a waiting claim looks again (webapp.store.next_claimable): the moment the next queued
job it may take becomes claimable, its run_after or its earlier attempt's lease end, on both
databases; and on PostgreSQL, that finding it reads none of a paused queue's due backlog.
Reading every queued job made each look of every waiting claim read a paused queue's
100,000 jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import queues
from webapp.store.extensions import db
from webapp.store.models import Job
from webapp.store.next_claimable import next_claimable_at
from webapp.store.transaction import unit_of_work

from tests.conftest import postgresql_only
from tests.factories import make_job
from tests.support.reads import jobs_entries_read


def a_job_requeued_while_its_attempt_stops() -> tuple[int, datetime]:
    """(id, lease end) of a job queued again by an operator while its cancelled attempt may
    still run: not claimable until that attempt's lease ends (webapp.store.leases)."""
    running = make_job("running", type="render", queue="gpu")
    jobs.cancel_job(running.id)
    jobs.force_start(running.id)
    requeued = db.session.get(Job, running.id)
    assert requeued.status == "queued" and requeued.lease_expires_at > utcnow()
    return requeued.id, requeued.lease_expires_at


def a_job_retried_later(job_type: str, queue: str) -> datetime:
    """The run_after of a job whose attempt failed and that waits out its backoff, queued."""
    running = make_job("running", type=job_type, queue=queue, max_attempts=3)
    retried = jobs.fail_job(running.id, running.lease_token, error="boom")
    assert retried.status == "queued" and retried.run_after > utcnow()
    return retried.run_after


def test_a_waiting_claim_looks_again_when_the_next_job_it_may_take_becomes_claimable(app):
    jobs.create_jobs([{"type": "report", "queue": "held"}] * 3)  # due, held back: not a reason to look
    queues.pause("held", actor="ops")
    looked_at = utcnow()
    later = a_job_retried_later("report", "mail")
    _, lease_end = a_job_requeued_while_its_attempt_stops()
    db.session.remove()

    first, last = sorted([later, lease_end])
    # The requeued job's run_after came long before its lease's end: claimable when the lease ends.
    assert next_claimable_at(None, None, looked_at) == first
    assert next_claimable_at(["render"], ["gpu"], looked_at) == lease_end
    assert next_claimable_at(["report"], None, looked_at) == later
    assert next_claimable_at(None, ["mail"], looked_at) == later
    assert next_claimable_at(None, None, first) == last
    assert next_claimable_at(["report"], ["gpu"], looked_at) is None
    assert next_claimable_at(None, None, last) is None


@postgresql_only
def test_finding_when_to_look_again_reads_none_of_a_paused_queues_backlog(app):
    jobs.create_jobs([{"type": "report", "queue": "held"}] * 3_000)
    queues.pause("held", actor="ops")
    later = a_job_retried_later("report", "mail")
    db.session.execute(text("ANALYZE jobs"))
    db.session.commit()

    with unit_of_work():
        before = jobs_entries_read()
        assert next_claimable_at(["report"], None, utcnow()) == later
        read = jobs_entries_read() - before

    # One probe per queue holding queued jobs, and the first entry of each after the look.
    assert read <= 20, read
