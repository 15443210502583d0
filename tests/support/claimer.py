"""A claiming process for the concurrency tests: claims batches until none are left."""

from __future__ import annotations


def claim_until_empty(database_url: str, worker_id: str, batch_size: int, start, results) -> None:
    from webapp import create_app, jobs

    from tests.conftest import test_config

    app = create_app(test_config(database_url))
    claimed: list[int] = []
    with app.app_context():
        start.wait()
        while batch := jobs.claim_jobs(worker_id, batch_size=batch_size):
            claimed.extend(job.id for job in batch)
    results.put((worker_id, claimed))
