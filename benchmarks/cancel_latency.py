"""How fast a cancel stops a running command, and what the worker costs per job.

1. Cancel latency: --runs times (default 50), a real worker (default 1 s
   heartbeat) runs `demo.command_sleep`; at a random moment in the heartbeat
   cycle the job is cancelled through the public API, and the clock stops when
   the command's process is gone (reaped). Prints p50/p99/max.
   Target: p99 ≤ 1.5 s with the default 1 s heartbeat.
2. Worker overhead per job: --noops `demo.noop` jobs queued up front, run by
   one worker with one slot (then four); wall time from the first claim to the
   last completion, per job. That is the claim, start and complete round trips
   plus the worker's own bookkeeping.

Everything is real: a gunicorn server on loopback, a worker process, the
store on SQLite (a file under /tmp) or the PostgreSQL database given.

    .venv/bin/python benchmarks/cancel_latency.py
    .venv/bin/python benchmarks/cancel_latency.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from benchmarks._support import (  # noqa: E402
    add_database_prefix_option,
    alive,
    fresh_database,
    running_server,
    wait_until,
)
from webapp import create_app, jobs  # noqa: E402
from webapp.client import JobwardenClient  # noqa: E402
from webapp.store.extensions import db  # noqa: E402
from webapp.store.models import Job, JobAttempt  # noqa: E402

KEY = "bench-internal-key"
TARGET_P99_S = 1.5


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


@contextmanager
def worker(server_url: str, log_path: Path, *options: str) -> Iterator[subprocess.Popen]:
    env = {**os.environ, "JOBWARDEN_INTERNAL_API_KEY": KEY, "PYTHONPATH": str(ROOT)}
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webapp",
                "worker",
                "--server",
                server_url,
                "--handlers",
                "webapp.worker.demo",
                "--log-level",
                "WARNING",
                *options,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def command_pid(job_id: int, timeout: float = 30) -> int:
    """The pid the running command printed, from the output its heartbeats carried."""

    def printed() -> re.Match | None:
        db.session.rollback()
        tail = db.session.scalar(select(JobAttempt.output_tail).where(JobAttempt.job_id == job_id))
        return re.search(r"pid (\d+)", tail or "")

    return int(wait_until(printed, timeout, f"job {job_id} to show its pid", interval=0.01).group(1))


def cancel_latencies(client: JobwardenClient, runs: int) -> list[float]:
    latencies = []
    for _ in range(runs):
        job = jobs.create_job(type="demo.command_sleep", payload={"seconds": 300})
        pid = command_pid(job.id)
        time.sleep(random.uniform(0, 1.0))  # a random point in the heartbeat cycle
        began = time.monotonic()
        client.cancel(job.id)
        while alive(pid):
            time.sleep(0.002)
        latencies.append(time.monotonic() - began)
    return latencies


def noop_throughput(count: int) -> float:
    """Seconds per job from the first claim to the last completion, once all `count` are done."""
    while True:
        db.session.rollback()
        done = db.session.scalar(select(func.count()).where(Job.type == "demo.noop", Job.status == "completed"))
        if done >= count:
            break
        time.sleep(0.05)
    first, last = db.session.execute(
        select(func.min(Job.claimed_at), func.max(Job.finished_at)).where(Job.type == "demo.noop")
    ).one()
    return (last - first).total_seconds() / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite under /tmp)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--noops", type=int, default=500)
    add_database_prefix_option(parser)
    args = parser.parse_args()

    with fresh_database(args.database_url, args.database_prefix) as url, tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": url,
                "JOBWARDEN_MONITOR": False,
                "JOBWARDEN_INTERNAL_API_KEY": KEY,
                "SECRET_KEY": "bench",
            }
        )
        with app.app_context():
            db.create_all()
            backend = db.engine.dialect.name
            with running_server(url, Path(tmp) / "server.log", JOBWARDEN_INTERNAL_API_KEY=KEY) as server:
                client = JobwardenClient(server.url)
                with worker(server.url, Path(tmp) / "worker.log", "--concurrency", "1"):
                    latencies = cancel_latencies(client, args.runs)
                print(f"backend: {backend}; heartbeat 1 s (default); {args.runs} cancels of a running command")
                print(
                    f"cancel → process gone: p50 {statistics.median(latencies):.3f} s, "
                    f"p99 {percentile(latencies, 99):.3f} s, max {max(latencies):.3f} s, "
                    f"min {min(latencies):.3f} s"
                )
                print(
                    f"target p99 ≤ {TARGET_P99_S} s: {'met' if percentile(latencies, 99) <= TARGET_P99_S else 'MISSED'}"
                )

                for slots in (1, 4):
                    db.session.execute(Job.__table__.delete().where(Job.type == "demo.noop"))
                    db.session.commit()
                    jobs.create_jobs([{"type": "demo.noop"} for _ in range(args.noops)])
                    with worker(server.url, Path(tmp) / "worker.log", "--concurrency", str(slots)):
                        per_job = noop_throughput(args.noops)
                    print(
                        f"no-op jobs, {slots} slot(s): {per_job * 1000:.1f} ms per job "
                        f"({1 / per_job:.0f} jobs/s) over {args.noops} jobs"
                    )
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
