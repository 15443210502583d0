"""Eight processes claiming at once: every job is handed out exactly once. From one queue; and
from three queues behind a paused queue's backlog, which the claims read queue by queue
(webapp.store.flow.fast_candidates_per_queue)."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
from sqlalchemy import func, select

from webapp import jobs
from webapp.jobs import queues
from webapp.store import flow
from webapp.store.extensions import db
from webapp.store.models import Job, JobAttempt

from tests.support.claimer import claim_until_empty

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

PROCESSES = 8
JOBS = 2000


@pytest.mark.parametrize("backlog", [0, flow.BACKLOG_PER_QUEUE], ids=["one_queue", "behind_a_paused_backlog"])
def test_eight_processes_claim_two_thousand_jobs_each_exactly_once(app, database_url, backlog):
    if backlog:
        jobs.create_jobs([{"type": "demo.noop", "queue": "held", "priority": 1} for _ in range(backlog)])
        queues.pause("held", actor="ops", reason="incident")
        assert flow.hints().restricted_backlog  # what each claimer's process reads too
    spread = ["default", "a", "b"] if backlog else ["default"]
    specs = [{"type": "demo.noop", "queue": spread[n % len(spread)], "priority": n % 2} for n in range(JOBS)]
    created = {job.id for job in jobs.create_jobs(specs)}
    db.session.remove()

    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(target=claim_until_empty, args=(database_url, f"w{n}", 7, start, results))
        for n in range(PROCESSES)
    ]
    for process in workers:
        process.start()
    start.set()
    claims = dict(results.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=30)
        assert process.exitcode == 0

    handed_out = Counter(job_id for ids in claims.values() for job_id in ids)
    assert set(handed_out) == created
    assert max(handed_out.values()) == 1
    assert sum(1 for ids in claims.values() if ids) > 1, "the claims did not overlap in time"
    assert (
        db.session.execute(
            select(func.count()).select_from(Job).where(Job.status == "claimed", Job.attempt == 1)
        ).scalar_one()
        == JOBS
    )
    assert db.session.execute(select(func.count()).select_from(JobAttempt)).scalar_one() == JOBS
    held = select(func.count()).select_from(Job).where(Job.queue == "held", Job.status == "queued")
    assert db.session.execute(held).scalar_one() == backlog
    owners = dict(db.session.execute(select(Job.id, Job.worker_id)).all())
    assert all(owners[job_id] == worker for worker, ids in claims.items() for job_id in ids)
