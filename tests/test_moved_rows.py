"""Claims and batches of reports hand back rows, not Job objects (webapp.store.models.JobRow);
a Job object the session already held of a moved job is expired, so a later read in the same
unit of work (a worker's batch of reports) sees the move, as it did when the moved jobs were
loaded as objects."""

from __future__ import annotations

from webapp import jobs
from webapp.store.transaction import unit_of_work


def test_a_job_read_before_its_batched_complete_reads_completed_after_it(app):
    jobs.create_jobs([{"type": "t"}, {"type": "t"}])
    claimed = jobs.claim_jobs("w1", batch_size=2, start=True)
    with unit_of_work():
        held = jobs.get_job(claimed[0].id)
        assert held.status == "running"
        outcomes = jobs.complete_jobs([jobs.CompleteReport(job.id, job.lease_token) for job in claimed])
        assert [outcome.status for outcome in outcomes] == ["completed", "completed"]
        assert held.status == "completed"
