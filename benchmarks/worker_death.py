"""Death in seconds: how long after `kill -9` of a worker its running job is orphaned.

Two server replicas (gunicorn) on one database, with the default heartbeat timeout
(30 s) and monitor interval (10 s). Each trial starts a worker on one replica, gives
it a `demo.sleep` job, kills the worker with SIGKILL once the job runs, and polls the
job through the *other* replica every 10 ms until it leaves `running`. The server that
held the worker's presence sees the connection drop (webapp.server.presence); without that,
the figure would be the heartbeat timeout plus up to a monitor interval (30–40 s).

    .venv/bin/python benchmarks/worker_death.py --trials 20
    .venv/bin/python benchmarks/worker_death.py --trials 20 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._support import (  # noqa: E402
    add_database_prefix_option,
    postgres_database,
    running_server,
    wait_until,
)
from webapp import create_app  # noqa: E402
from webapp.client import JobwardenClient  # noqa: E402
from webapp.store.extensions import db  # noqa: E402
from webapp.worker.protocol import WorkerClient  # noqa: E402

KEY = "worker-death-internal-key"
POLL_S = 0.01


def start_worker(server_url: str, worker_id: str, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webapp",
            "worker",
            "--server",
            server_url,
            "--handlers",
            "webapp.worker.demo",
            "--types",
            "demo.sleep",
            "--worker-id",
            worker_id,
        ],
        cwd=ROOT,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "JOBWARDEN_INTERNAL_API_KEY": KEY, "PYTHONPATH": str(ROOT)},
    )


def trial(held_by: JobwardenClient, watched_by: JobwardenClient, worker_url: str, number: int, directory: Path):
    """Seconds from SIGKILL to the job leaving `running`, seen through the other replica."""
    job = held_by.create("demo.sleep", {"seconds": 300}, max_attempts=1)
    worker = start_worker(worker_url, f"death-{number}", directory / f"worker-{number}.log")
    try:
        wait_until(lambda: watched_by.get(job["id"])["status"] == "running", 60, "the job to run", POLL_S)
        time.sleep(0.3)  # past the start: a worker at work, its presence long established
    finally:
        worker.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        worker.wait()
    wait_until(lambda: watched_by.get(job["id"])["status"] != "running", 60, "the job to leave running", POLL_S)
    return time.monotonic() - killed_at


def measure(database_url: str, trials: int, directory: Path) -> list[float]:
    """Seconds from kill to orphan, one per trial, on an empty database at `database_url`."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "JOBWARDEN_MONITOR": False,
            "JOBWARDEN_ENV": "testing",
            "JOBWARDEN_INTERNAL_API_KEY": KEY,
        }
    )
    with app.app_context():
        db.create_all()
        db.session.remove()
    settings = {"JOBWARDEN_INTERNAL_API_KEY": KEY, "JOBWARDEN_MONITOR": "on"}  # default timeout and interval
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(running_server(database_url, directory / f"replica-{n}.log", **settings))
            for n in (0, 1)
        ]
        clients = [WorkerClient(replica.url, internal_key=KEY) for replica in replicas]
        seconds = []
        for number in range(trials):
            held, watched = number % 2, 1 - number % 2
            seconds.append(trial(clients[held], clients[watched], replicas[held].url, number, directory))
        return seconds


def describe(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"{len(seconds)} kills: p50 {statistics.median(ordered):.2f} s, p99 {p99:.2f} s, "
        f"max {ordered[-1]:.2f} s, min {ordered[0]:.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL: a fresh database is made on that server")
    parser.add_argument("--trials", type=int, default=20)
    add_database_prefix_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="worker-death-") as scratch, ExitStack() as stack:
        directory = Path(scratch)
        if args.database_url:
            url = stack.enter_context(postgres_database(args.database_url, args.database_prefix))
        else:
            url = f"sqlite:///{directory / 'death.db'}"
        print(describe(measure(url, args.trials, directory)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
