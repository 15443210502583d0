"""Claimers for the tests: processes that claim until none are left, and a claim that waits in a thread."""

from __future__ import annotations

import threading
import time


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


def start_waiting_claim(
    client, wait_s: float, worker_id: str = "w1", types: tuple[str, ...] = ("demo.noop",)
) -> tuple[threading.Thread, list[tuple[float, list]]]:
    """A claim through `client` (a WorkerClient) waiting up to `wait_s` in a thread of its own;
    its answer comes in the list, with when (monotonic)."""
    answers: list[tuple[float, list]] = []

    def claim_waiting() -> None:
        claimed = client.claim(worker_id, list(types), wait_s=wait_s)
        answers.append((time.monotonic(), claimed))

    waiting = threading.Thread(target=claim_waiting)
    waiting.start()
    return waiting, answers
