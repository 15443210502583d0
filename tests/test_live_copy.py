"""One live copy of a job at any moment (webapp.store.leases), with real workers and commands
that hold an exclusive lock on their job's file (benchmarks/flock_job.py) and record
every overlap.

Each command ignores SIGTERM, so a stopped copy lives until its worker's kill grace
ends: a recovery action right after cancel or mark failed must wait for it (the job
shows `stopping` meanwhile), and a frozen worker's command must be killed by its
supervisor before the lease runs out and the monitor hands the job on.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from benchmarks._support import wait_until
from benchmarks.live_copy import KEY, Settings, Workers, run
from webapp.store.extensions import db
from webapp.worker.protocol import WorkerClient

from tests.support.server import running_server

KILL_GRACE_S = 3.0
LEASE_S = 4.0


def overlaps(directory: Path) -> list[str]:
    found = directory / "overlaps"
    return found.read_text().splitlines() if found.exists() else []


def runs(directory: Path) -> list[str]:
    found = directory / "runs"
    return found.read_text().splitlines() if found.exists() else []


def second_copy_seen(directory: Path) -> bool:
    """The second copy runs, or found the first still holding the lock (an overlap)."""
    return len(runs(directory)) == 2 or bool(overlaps(directory))


@pytest.fixture
def flock_server(app, database_url, tmp_path):
    db.session.remove()
    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_MONITOR="on",
        JOBWARDEN_MONITOR_INTERVAL="0.5",
        JOBWARDEN_HEARTBEAT_TIMEOUT=str(LEASE_S),
        # Short retries: a frozen worker's waiting claim can still be handed the orphaned job
        # (answered into a socket nobody reads), which costs one more timeout and a retry.
        JOBWARDEN_RETRY_BASE_S="0.1",
        JOBWARDEN_RETRY_MAX_S="1",
        JOBWARDEN_INTERNAL_API_KEY=KEY,
    ) as server:
        yield server


@pytest.fixture
def two_workers(flock_server, tmp_path):
    workers = Workers(flock_server.url, Settings(kill_grace=KILL_GRACE_S, heartbeat_timeout=LEASE_S), tmp_path, "t")
    workers.start()
    workers.start()
    yield workers
    workers.stop_all()


@pytest.mark.parametrize(
    ("ending", "recovery"),
    [("cancel", "force_start"), ("mark_failed", "force_start"), ("mark_failed", "resume"), ("cancel", "restart")],
)
def test_a_recovery_right_after_the_end_waits_for_the_old_copy_to_stop(
    flock_server, two_workers, tmp_path, ending, recovery
):
    client = WorkerClient(flock_server.url, internal_key=KEY)
    job = client.create("live.flock", {"dir": str(tmp_path), "key": "one", "seconds": 60}, max_attempts=5)
    wait_until(lambda: runs(tmp_path), 30, "the first copy runs")
    assert client.get(job["id"])["stopping"] is None

    getattr(client, ending)(job["id"])
    ended = client.get(job["id"])
    assert ended["stopping"]["attempt"] == 1 and ended["stopping"]["deadline"] > ended["updated_at"]
    again = getattr(client, recovery)(job["id"])
    assert again["status"] == "queued" and again["stopping"] == ended["stopping"]

    # The old copy dies at its kill grace's end, its worker confirms, and only then the new one runs.
    wait_until(lambda: second_copy_seen(tmp_path), KILL_GRACE_S + LEASE_S + 10, "the second copy runs")
    assert overlaps(tmp_path) == []
    assert client.get(job["id"])["stopping"] is None


def test_a_frozen_workers_command_is_killed_before_the_job_runs_elsewhere(flock_server, two_workers, tmp_path):
    client = WorkerClient(flock_server.url, internal_key=KEY)
    job = client.create("live.flock", {"dir": str(tmp_path), "key": "frozen", "seconds": 60}, max_attempts=5)
    wait_until(lambda: runs(tmp_path), 30, "the first copy runs")
    worker_id = client.get(job["id"])["worker_id"]
    frozen = two_workers.processes[int(worker_id.rsplit("-", 1)[1]) - 1]  # live-t-N: the Nth started
    frozen.send_signal(signal.SIGSTOP)
    try:
        # The monitor orphans the job after the heartbeat timeout and the other worker takes it.
        wait_until(lambda: second_copy_seen(tmp_path), LEASE_S * 3 + 10, "the job runs on the other worker")
        assert overlaps(tmp_path) == []
    finally:
        frozen.send_signal(signal.SIGCONT)


@pytest.mark.slow
def test_random_actions_and_worker_deaths_never_leave_two_live_copies(app, database_url, tmp_path):
    """The short run; `benchmarks/live_copy.py --actions 500` is the long one (docs/reliability.md)."""
    db.session.remove()
    result = run(database_url, Settings(actions=120, jobs=8, seed=23), tmp_path)
    assert result.overlaps == [], result.summary()
    assert sum(result.taken.values()) >= 120 and result.runs >= 8, result.summary()
