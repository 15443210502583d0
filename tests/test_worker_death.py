"""Death in seconds (webapp.server.presence): a real worker killed with SIGKILL while connected has its
job orphaned within seconds, with the default heartbeat timeout and through the other of two
replicas; a worker that stops cleanly says goodbye and is not taken for dead.
benchmarks/worker_death.py measures the figure (docs/benchmarks.md)."""

from __future__ import annotations

import signal

from benchmarks._support import wait_until
from benchmarks.worker_death import KEY, describe, measure, start_worker
from webapp.store.extensions import db
from webapp.store.models import Worker
from webapp.worker.protocol import WorkerClient

from tests.support.server import running_server

P50_S, P99_S = 2.0, 5.0


def test_a_killed_workers_job_is_orphaned_within_seconds_across_replicas(app, database_url, tmp_path):
    db.session.remove()
    seconds = measure(database_url, 4, tmp_path)
    assert sorted(seconds)[len(seconds) // 2] <= P50_S and max(seconds) <= P99_S, describe(seconds)


def test_the_orphaned_job_says_its_worker_died_and_waits_for_the_lease(app, database_url, tmp_path):
    db.session.remove()
    with running_server(database_url, tmp_path / "server.log", JOBWARDEN_INTERNAL_API_KEY=KEY) as server:
        client = WorkerClient(server.url, internal_key=KEY)
        job = client.create("demo.sleep", {"seconds": 300}, max_attempts=3)
        worker = start_worker(server.url, "w-dies", tmp_path / "worker.log")
        wait_until(lambda: client.get(job["id"])["status"] == "running", 60, "the job to run")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        orphaned = wait_until(
            lambda: (found := client.get(job["id"]))["status"] != "running" and found, 10, "the job to leave running"
        )
        assert orphaned["status"] == "queued"
        assert orphaned["last_error"] == "orphaned: worker w-dies died (its connection to the server dropped)"
        # Its command's supervisor might live on: the job runs elsewhere once the lease runs out.
        assert orphaned["stopping"]["attempt"] == 1
        assert db.session.get(Worker, "w-dies").state == "gone", logs_of(tmp_path)


def logs_of(directory) -> str:
    """The last lines of the server's and the worker's logs: which presence dropped when."""
    return "\n".join(
        f"--- {name}\n" + "\n".join((directory / name).read_text().splitlines()[-25:])
        for name in ("server.log", "worker.log")
    )


def test_a_worker_stopped_cleanly_says_goodbye_and_is_not_taken_for_dead(app, database_url, tmp_path):
    db.session.remove()
    with running_server(database_url, tmp_path / "server.log", JOBWARDEN_INTERNAL_API_KEY=KEY) as server:
        worker = start_worker(server.url, "w-leaves", tmp_path / "worker.log")
        wait_until(lambda: db.session.get(Worker, "w-leaves") or db.session.rollback(), 30, "the worker row")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        db.session.rollback()
        assert db.session.get(Worker, "w-leaves").state == "stopped"
