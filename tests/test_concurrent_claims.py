"""Eight processes claiming at once from one queue: every job is handed out exactly once."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
from sqlalchemy import func, select

from webapp import jobs
from webapp.store.extensions import db
from webapp.store.models import Job, JobAttempt

from tests.support.claimer import claim_until_empty

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

PROCESSES = 8
JOBS = 2000


def test_eight_processes_claim_two_thousand_jobs_each_exactly_once(app, database_url):
    created = {job.id for job in jobs.create_jobs([{"type": "demo.noop"} for _ in range(JOBS)])}
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
    owners = dict(db.session.execute(select(Job.id, Job.worker_id)).all())
    assert all(owners[job_id] == worker for worker, ids in claims.items() for job_id in ids)
