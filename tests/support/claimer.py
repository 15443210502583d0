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


def run_limited_jobs(
    database_url: str, worker_id: str, types: list[str] | None, batch_size: int, hold_s: float, start, results
) -> None:
    """Claims up to `batch_size` jobs of `types` (None: any) at a time, as a worker with that
    many free slots does, until none is left for two seconds, and "runs" each for `hold_s`: the run's interval is taken on this
    process's clock after the claim committed and before the completion, so it lies inside
    the job's live time."""
    import time

    from webapp import create_app, jobs

    from tests.conftest import test_config

    app = create_app(test_config(database_url))
    runs: list[tuple[str, str, float, float]] = []
    with app.app_context():
        start.wait()
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 2.0:
            claimed = jobs.claim_jobs(worker_id, types=types, batch_size=batch_size, start=True)
            if not claimed:
                time.sleep(0.002)
                continue
            idle_since = time.monotonic()
            for job in claimed:
                began = time.time()
                time.sleep(hold_s)
                ended = time.time()
                runs.append((job.queue, job.concurrency_key or "", began, ended))
                jobs.complete_job(job.id, job.lease_token)
    results.put((worker_id, runs))
