"""One live copy: random operator actions and worker deaths never leave two copies of a job running.

J jobs of `live.flock` (benchmarks/flock_handlers.py: a command that ignores SIGTERM
and holds an exclusive lock on its job's file while it works, writing a line to
`overlaps` whenever it finds the lock already held); W worker processes with a kill
grace; a real server (gunicorn) with the monitor on and a short heartbeat timeout (so
leases are short). Then, until A actions were taken, one random action every
`--pace` seconds:

- on a random job, through the public API: cancel, mark failed, force start, resume,
  restart (a refusal — 409 for a status that does not allow it — counts as taken);
- on a random worker: SIGKILL (a new worker starts), or SIGSTOP for a random stretch
  of up to two leases, then SIGCONT (its commands' supervisors must kill them when the
  lease runs out unrenewed, and the monitor hands the job on).

Checked at the end: no overlap (the `overlaps` file is empty), and every job a
command started for ran at least once.

    .venv/bin/python benchmarks/live_copy.py --actions 500
    .venv/bin/python benchmarks/live_copy.py --actions 500 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Exits 1 on any overlap. `tests/test_live_copy.py` runs a short version.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._support import add_database_prefix_option, postgres_database, running_server  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.client import Conflict  # noqa: E402
from webapp.store.extensions import db  # noqa: E402
from webapp.worker.protocol import WorkerClient  # noqa: E402

KEY = "live-copy-internal-key"
JOB_ACTIONS = ("cancel", "mark_failed", "force_start", "resume", "restart")
WORKER_ACTIONS = ("sigkill", "sigstop")


@dataclass
class Settings:
    actions: int = 500
    jobs: int = 12
    workers: int = 3
    pace: float = 0.15  # seconds between actions
    heartbeat_timeout: float = 4.0  # the lease
    kill_grace: float = 2.0
    seconds: tuple[float, float] = (5.0, 30.0)  # each copy's work: most are still running when an action comes
    worker_share: float = 0.1  # of the actions, on workers
    seed: int | None = None


@dataclass
class Result:
    taken: Counter = field(default_factory=Counter)  # action → how many
    refused: Counter = field(default_factory=Counter)  # action → 409s
    overlaps: list[str] = field(default_factory=list)
    runs: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        total = sum(self.taken.values())
        return (
            f"{total} actions in {self.seconds:.0f} s ({dict(self.taken)}; refused {dict(self.refused)}), "
            f"{self.runs} copies started, {len(self.overlaps)} overlaps"
        )


class Workers:
    def __init__(self, server_url: str, settings: Settings, directory: Path, run_id: str):
        self.server_url, self.settings, self.directory, self.run_id = server_url, settings, directory, run_id
        self.processes: list[subprocess.Popen] = []
        self.started = 0

    def start(self) -> subprocess.Popen:
        self.started += 1
        worker_id = f"live-{self.run_id}-{self.started}"
        log = (self.directory / f"{worker_id}.log").open("w")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webapp",
                "worker",
                "--server",
                self.server_url,
                "--handlers",
                "benchmarks.flock_handlers",
                "--types",
                "live.flock",
                "--concurrency",
                "2",
                "--heartbeat-interval",
                "0.5",
                "--kill-grace",
                str(self.settings.kill_grace),
                "--worker-id",
                worker_id,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "JOBWARDEN_INTERNAL_API_KEY": KEY, "PYTHONPATH": str(ROOT)},
        )
        self.processes.append(process)
        return process

    def sigkill(self, rng: random.Random) -> None:
        """The worker process alone: its commands' supervisors see it die and stop them."""
        process = rng.choice(self.processes)
        self.processes.remove(process)
        process.kill()
        process.wait()
        self.start()

    def sigstop(self, rng: random.Random) -> None:
        """Frozen for up to two leases (a long pause), then woken; meanwhile the run goes on."""
        process = rng.choice(self.processes)
        process.send_signal(signal.SIGSTOP)
        frozen_s = rng.uniform(0.5, 2 * self.settings.heartbeat_timeout)
        subprocess.Popen(
            ["sh", "-c", f"sleep {frozen_s:.2f}; kill -CONT {process.pid} 2>/dev/null"], start_new_session=True
        )

    def stop_all(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait()


def run(database_url: str, settings: Settings, directory: Path) -> Result:
    """One run on an empty database at `database_url`; the result says what happened."""
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
    rng = random.Random(settings.seed)
    result = Result()
    run_id = uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        server = stack.enter_context(
            running_server(
                database_url,
                directory / "server.log",
                JOBWARDEN_MONITOR="on",
                JOBWARDEN_MONITOR_INTERVAL="0.5",
                JOBWARDEN_HEARTBEAT_TIMEOUT=str(settings.heartbeat_timeout),
                JOBWARDEN_INTERNAL_API_KEY=KEY,
            )
        )
        client = WorkerClient(server.url, internal_key=KEY, retries=0)
        job_ids = [
            client.create(
                "live.flock",
                {"dir": str(directory), "key": f"job{n}", "seconds": round(rng.uniform(*settings.seconds), 2)},
                max_attempts=1000,
            )["id"]
            for n in range(settings.jobs)
        ]
        workers = Workers(server.url, settings, directory, run_id)
        stack.callback(workers.stop_all)
        for _ in range(settings.workers):
            workers.start()
        started = time.monotonic()
        while sum(result.taken.values()) < settings.actions:
            time.sleep(rng.uniform(0, 2 * settings.pace))
            if rng.random() < settings.worker_share:
                action = rng.choice(WORKER_ACTIONS)
                getattr(workers, action)(rng)
            else:
                action = rng.choice(JOB_ACTIONS)
                try:
                    getattr(client, action)(rng.choice(job_ids), reason="live-copy run")
                except Conflict:
                    result.refused[action] += 1
            result.taken[action] += 1
        result.seconds = time.monotonic() - started
        # Let every stopping copy stop (a lease, a kill grace) before reading the files.
        time.sleep(settings.heartbeat_timeout + settings.kill_grace)
    overlaps = directory / "overlaps"
    result.overlaps = overlaps.read_text().splitlines() if overlaps.exists() else []
    runs = directory / "runs"
    result.runs = len(runs.read_text().splitlines()) if runs.exists() else 0
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL: a fresh database is made on that server")
    parser.add_argument("--actions", type=int, default=Settings.actions)
    parser.add_argument("--jobs", type=int, default=Settings.jobs)
    parser.add_argument("--workers", type=int, default=Settings.workers)
    parser.add_argument("--seed", type=int)
    add_database_prefix_option(parser)
    args = parser.parse_args()
    settings = Settings(actions=args.actions, jobs=args.jobs, workers=args.workers, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="live-copy-") as scratch, ExitStack() as stack:
        directory = Path(scratch)
        if args.database_url:
            url = stack.enter_context(postgres_database(args.database_url, args.database_prefix))
        else:
            url = f"sqlite:///{directory / 'live.db'}"
        result = run(url, settings, directory)
    print(result.summary())
    for line in result.overlaps:
        print("overlap:", line)
    return 1 if result.overlaps else 0


if __name__ == "__main__":
    sys.exit(main())
