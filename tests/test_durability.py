"""A web server SIGKILLed in the middle of a burst of completions loses no
completion it acknowledged: after the restart, every job whose complete call
got a 200 is completed in the store (SQLite with synchronous=FULL; PostgreSQL)."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import requests

from webapp import jobs
from webapp.store.extensions import db

from tests.conftest import INTERNAL_KEY

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}
JOBS = 300


def answers_after_restart(url: str, timeout: float = 20) -> int:
    """The status of the first answer the restarted server gives (its workers may still be booting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=5).status_code
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_every_acknowledged_completion_survives_a_server_sigkill(server):
    jobs.create_jobs([{"type": "burst"} for _ in range(JOBS)])
    leases = {job.id: job.lease_token for job in jobs.claim_jobs("burster", batch_size=JOBS)}
    for job_id, token in leases.items():
        jobs.start_job(job_id, token)
    acknowledged: list[int] = []
    lock = threading.Lock()
    pending = list(leases.items())

    def complete_until_the_server_dies():
        session = requests.Session()
        while True:
            with lock:
                if not pending:
                    return
                job_id, token = pending.pop()
            try:
                answer = session.post(
                    f"{server.url}/api/internal/jobs/{job_id}/complete",
                    headers=KEY,
                    json={"lease_token": token, "result": {"n": job_id}},
                    timeout=5,
                )
            except requests.RequestException:
                return  # the server is gone: this answer never came
            if answer.status_code == 200:
                with lock:
                    acknowledged.append(job_id)

    threads = [threading.Thread(target=complete_until_the_server_dies) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < JOBS // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.stop(signal.SIGKILL)
    for thread in threads:
        thread.join()
    assert JOBS // 3 <= len(acknowledged) < JOBS, "the kill must land mid-burst"

    server.start()
    assert answers_after_restart(f"{server.url}/healthz") == 200
    db.session.rollback()
    lost = [job_id for job_id in acknowledged if jobs.get_job(job_id).status != "completed"]
    assert lost == []
    assert all(jobs.get_job(job_id).result == {"n": job_id} for job_id in acknowledged)
