"""Queue limits proven with real worker processes on a real server, on each database.

Each run writes when it started and ended on its worker's own clock
(tests/support/flow_handlers.py); a run's interval lies inside its job's live time
(claimed to completed), so at no instant may more runs overlap than the limit allows.
The rate limit is checked on the claim times the store decided on, and on the workers'
own start times against the bound the spread of claim-to-start delays allows.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from webapp import jobs
from webapp.jobs import queues
from webapp.store.extensions import db
from webapp.store.models import Job, JobAttempt

from tests.conftest import INTERNAL_KEY
from tests.support.server import PROJECT_ROOT, running_server
from tests.support.worker_process import wait_for

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

WORKERS = 4
SLOTS_PER_WORKER = 2


def start_worker(server, ledger: Path, name: str, tmp_path: Path, *options: str, concurrency: int = SLOTS_PER_WORKER):
    log = (tmp_path / f"{name}.log").open("w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webapp",
            "worker",
            "--server",
            server.url,
            "--handlers",
            "tests.support.flow_handlers",
            "--concurrency",
            str(concurrency),
            # 1 s: the worker's calls then wait 5 s for an answer, as a loaded machine may need
            # (a start report retried after a lost answer is refused: the job would be lost).
            "--heartbeat-interval",
            "1",
            "--poll-interval",
            "0.1",
            "--worker-id",
            name,
            *options,
        ],
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ,
            "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY,
            "JOBWARDEN_FLOW_LEDGER": str(ledger),
            "PYTHONPATH": str(PROJECT_ROOT),
        },
    )


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def wait_until_finished(job_ids: list[int], timeout: float) -> None:

    def all_completed() -> bool:
        statuses = db.session.scalars(select(Job.status).where(Job.id.in_(job_ids))).all()
        return all(status == "completed" for status in statuses)

    wait_for(all_completed, timeout, f"all {len(job_ids)} jobs to complete")


def read_ledger(ledger: Path) -> list[tuple[int, str, float, float]]:
    runs = []
    for line in ledger.read_text().splitlines():
        job_id, key, started, ended = line.split(",")
        runs.append((int(job_id), key, float(started), float(ended)))
    return runs


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at a tie)."""
    moments = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = highest = 0
    for _, change in moments:
        open_now += change
        highest = max(highest, open_now)
    return highest


def most_in_a_window(times: list[float], window: float) -> int:
    """The largest number of `times` in any half-open window [t, t + window)."""
    times = sorted(times)
    highest, first = 0, 0
    for last, moment in enumerate(times):
        while times[first] <= moment - window:
            first += 1
        highest = max(highest, last - first + 1)
    return highest


@pytest.fixture
def flow_server(app, database_url, tmp_path):
    with running_server(database_url, tmp_path / "server.log") as server:
        yield server


def test_concurrency_and_key_concurrency_hold_across_worker_processes(flow_server, tmp_path):
    concurrency, keys = 3, ["a", "b", "c", "d", "e"]
    queues.set_limits("gpu", {"concurrency": concurrency}, actor="test")
    queues.set_limits("api", {"key_concurrency": 1}, actor="test")
    # 0.1 s each: long enough that the limits are pressed (reached), short enough for hundreds.
    gpu = jobs.create_jobs([{"type": "flow.record", "queue": "gpu", "payload": {"key": "gpu", "seconds": 0.1}}] * 150)
    api = jobs.create_jobs(
        [
            {"type": "flow.record", "queue": "api", "concurrency_key": key, "payload": {"key": key, "seconds": 0.1}}
            for key in keys * 30
        ]
    )
    ledger = tmp_path / "ledger"
    workers = [start_worker(flow_server, ledger, f"w{n}", tmp_path) for n in range(WORKERS)]
    try:
        wait_until_finished([job.id for job in gpu + api], timeout=240)
    finally:
        stop(workers)

    runs = read_ledger(ledger)
    assert len(runs) == 300
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for _, key, started, ended in runs:
        by_key[key].append((started, ended))
    assert most_at_once(by_key["gpu"]) == concurrency  # reached, never passed
    assert max(most_at_once(by_key[key]) for key in keys) == 1
    # The keys did run side by side: the limit is per key, not per queue.
    assert most_at_once([interval for key in keys for interval in by_key[key]]) > 1


def test_a_worker_started_with_queues_takes_only_those_queues(flow_server, tmp_path):
    made = {
        queue: jobs.create_jobs([{"type": "flow.record", "queue": queue, "payload": {"key": queue, "seconds": 0}}] * 5)
        for queue in ("a", "b", "c")
    }
    ledger = tmp_path / "ledger"
    worker = start_worker(flow_server, ledger, "w-ab", tmp_path, "--queues", "a,b")
    try:
        wait_until_finished([job.id for job in made["a"] + made["b"]], timeout=60)
    finally:
        stop([worker])
    assert sorted(key for _, key, _, _ in read_ledger(ledger)) == ["a"] * 5 + ["b"] * 5
    db.session.expire_all()
    assert {db.session.get(Job, job.id).status for job in made["c"]} == {"queued"}


def test_the_rate_limit_holds_in_every_window_across_worker_processes(flow_server, tmp_path):
    # At most the workers' slots (8), so a window can fill whatever the machine's speed.
    limit, period_s = 6, 0.5
    queues.set_limits("calls", {"rate_limit": {"limit": limit, "period_s": period_s}}, actor="test")
    made = jobs.create_jobs([{"type": "flow.record", "queue": "calls", "payload": {"seconds": 0}}] * 150)
    ledger = tmp_path / "ledger"
    workers = [start_worker(flow_server, ledger, f"w{n}", tmp_path) for n in range(WORKERS)]
    try:
        wait_until_finished([job.id for job in made], timeout=240)
    finally:
        stop(workers)

    claimed_at = {
        job_id: moment.timestamp()
        for job_id, moment in db.session.execute(select(JobAttempt.job_id, JobAttempt.claimed_at)).all()
    }
    # The store's decisions, on the server's clock: exactly at the limit in some window, never past it.
    assert most_in_a_window(list(claimed_at.values()), period_s) == limit
    # The workers' own start times: each start is its claim plus a delay, so the starts in
    # any period on their clocks were claimed within period + spread of the delays, and
    # a sliding window lets at most limit × ceil((period + spread) / period) through there.
    runs = read_ledger(ledger)
    assert len(runs) == len(made)
    delays = [started - claimed_at[job_id] for job_id, _, started, _ in runs]
    spread = max(delays) - min(delays)
    bound = limit * math.ceil((period_s + spread) / period_s)
    assert most_in_a_window([started for _, _, started, _ in runs], period_s) <= bound
    # Paced, not bunched: 150 starts at 6 per 0.5 s take at least 12 s.
    assert max(claimed_at.values()) - min(claimed_at.values()) >= (len(made) / limit - 1) * period_s


def test_a_killed_worker_frees_its_slot_when_its_job_is_orphaned(app, database_url, tmp_path):
    queues.set_limits("gpu", {"concurrency": 1}, actor="test")
    held = jobs.create_job(type="flow.record", queue="gpu", payload={"seconds": 600}, max_attempts=1)
    waiting = jobs.create_job(type="flow.record", queue="gpu", payload={"seconds": 0})
    ledger = tmp_path / "ledger"
    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_MONITOR="on",
        JOBWARDEN_MONITOR_INTERVAL="0.5",
        JOBWARDEN_HEARTBEAT_TIMEOUT="2",
    ) as server:
        killed = start_worker(server, ledger, "killed", tmp_path, concurrency=2)
        try:
            wait_for(lambda: jobs.get_job(held.id).status == "running", 60, "the held job to run")
            # The worker has a free slot, but the queue has none: the second job waits.
            db.session.rollback()
            assert jobs.get_job(waiting.id).status == "queued"
        finally:
            stop([killed])
        survivor = start_worker(server, ledger, "survivor", tmp_path)
        try:
            wait_until_finished([waiting.id], timeout=60)
        finally:
            stop([survivor])

    db.session.rollback()
    (orphaned,) = jobs.attempts_of(held.id)
    assert (orphaned.outcome, jobs.get_job(held.id).status) == ("orphaned", "failed")
    (ran,) = jobs.attempts_of(waiting.id)
    assert ran.worker_id == "survivor"
    assert ran.claimed_at >= orphaned.finished_at
