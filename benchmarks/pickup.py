"""Pickup latency and idle CPU: how soon a waiting worker starts a new job, and
what the worker costs while it waits. Jobwarden (PostgreSQL and SQLite) beside
procrastinate's LISTEN/NOTIFY worker on the same PostgreSQL, in one run.

Jobwarden: gunicorn with the package's settings (as `jobwarden serve`), the monitor off, and one
`jobwarden worker` with default settings (long-poll claims, concurrency 1).
procrastinate (pinned in benchmarks/store.py, in its own virtualenv): one worker
with its defaults (concurrency 1, LISTEN/NOTIFY).

1. Idle CPU: each worker process's own CPU time (/proc/PID/stat) over --idle-s
   seconds with nothing to do, as a share of one core; for Jobwarden also the
   server's processes (master and gunicorn workers) over the same seconds.
2. Pickup: --jobs no-op jobs, created one at a time, each once the previous one
   finished, so the worker is waiting every time. Pickup = the job's start as
   the store recorded it (Jobwarden `started_at`; procrastinate's `started`
   event) minus the clock read just before the create request (Jobwarden: an
   HTTP POST /api/jobs; procrastinate: `defer`). p50/p95/p99/max printed.
3. With --limits, each Jobwarden backend runs twice, back to back: as above, then with every
   job in a queue with `concurrency` and `key_concurrency` set (never binding, a key per
   job out of --keys), so each claim goes through the limited part (webapp/store/flow.py);
   the ratio of the pickup p50s is printed. With --pairs N, N such pairs alternate and the
   ratio of the p50s of all their pickups is printed too: a pair's ratio swings with the
   machine by more than limits cost.

    .venv/bin/python benchmarks/pickup.py
    .venv/bin/python benchmarks/pickup.py --jobs 100 --backends sqlite --skip-procrastinate
    .venv/bin/python benchmarks/pickup.py --limits --skip-procrastinate
    .venv/bin/python benchmarks/pickup.py --limits --pairs 4 --jobs 100 --idle-s 1 --skip-procrastinate
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from statistics import median_high

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sqlalchemy import create_engine, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from store import PROCRASTINATE_SIDE, procrastinate_python  # noqa: E402

from benchmarks._support import (  # noqa: E402
    DEFAULT_POSTGRES,
    INTERNAL_KEY,
    add_database_prefix_option,
    app_config,
    children,
    cpu_seconds,
    postgres_database,
    running_server,
)
from webapp import create_app  # noqa: E402
from webapp.client import JobwardenClient  # noqa: E402
from webapp.store.extensions import db  # noqa: E402
from webapp.store.models import Job  # noqa: E402


def cpu_share(pids: list[int], seconds: float) -> float:
    before, started = sum(map(cpu_seconds, pids)), time.monotonic()
    time.sleep(seconds)
    return (sum(map(cpu_seconds, pids)) - before) / (time.monotonic() - started)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(pct: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))] * 1000

    return (
        f"p50 {at(50):6.1f} ms  p95 {at(95):6.1f} ms  p99 {at(99):6.1f} ms  max {ordered[-1] * 1000:6.1f} ms"
        f"  ({len(values)} jobs)"
    )


@contextmanager
def jobwarden_database(backend: str, postgres: str, prefix: str) -> Iterator[str]:
    if backend == "postgresql":
        with postgres_database(postgres, prefix) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/pickup.db"


LIMITED_QUEUE = "limited"
# Both systems' jobs are first looked for this long after their create (then every 2 ms): a look
# is a query of this process and of a database backend, and on two cores looks every 2 ms during
# the pickup took CPU from the processes being measured (Jobwarden's p50 11.0 ms with them,
# against 5.2 ms for the same path in pickup_timeline.py, which does not look). A no-op job
# of either system has long finished by then.
FIRST_LOOK_S = 0.05


def run_jobwarden(backend: str, args: argparse.Namespace, limits: bool = False) -> list[float]:
    """The run's pickups, in seconds."""
    with (
        jobwarden_database(backend, args.postgres, args.database_prefix) as url,
        tempfile.TemporaryDirectory() as scratch,
    ):
        logs = args.logs or scratch
        app = create_app(app_config(url))
        with app.app_context():
            db.create_all()
            if limits:
                from webapp.jobs import queues

                queues.set_limits(LIMITED_QUEUE, {"concurrency": 1_000, "key_concurrency": 1}, actor="bench")
            db.engine.dispose()
        spec = {"queue": LIMITED_QUEUE} if limits else {}
        with running_server(url, Path(logs) / f"server-{backend}.log", deployed=True) as server:
            env = {**os.environ, "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY, "PYTHONPATH": str(ROOT)}
            worker = subprocess.Popen(
                [sys.executable, "-m", "webapp", "worker", "--server", server.url, "--types", "demo.noop"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                api = JobwardenClient(server.url, timeout=30)
                api.create("demo.noop")  # warm-up: the worker is connected and has run a job
                engine = create_engine(url)
                wait_finished(engine, 1)
                time.sleep(1)
                worker_cpu = cpu_share([worker.pid], args.idle_s)
                server_cpu = cpu_share([server.process.pid, *children(server.process.pid)], args.idle_s)
                pickups: list[float] = []
                steps: dict[str, list[float]] = {"created": [], "claimed": [], "started": []}
                for number in range(args.jobs):
                    keyed = {**spec, "concurrency_key": f"key-{number % args.keys}"} if limits else spec
                    before = datetime.now(UTC)
                    created = api.create("demo.noop", **keyed)
                    times = wait_finished(engine, created["id"])
                    pickups.append((times[-1] - before).total_seconds())
                    for step, at, previous in zip(steps, times, (before, *times), strict=False):
                        steps[step].append((at - previous).total_seconds())
                engine.dispose()
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
    label = f"{backend}{', limits on' if limits else ''}"
    print(
        f"jobwarden     {label:<10} idle CPU: worker {worker_cpu:6.2%}  server {server_cpu:6.2%} of a core",
        flush=True,
    )
    print(f"jobwarden     {label:<10} pickup: {percentiles(pickups)}", flush=True)
    for step, durations in steps.items():
        print(f"              {step + ' after the last':<24} {percentiles(durations)}", flush=True)
    return pickups


def wait_finished(engine, job_id: int) -> tuple[datetime, datetime, datetime]:
    """When the job was created, claimed and started, once it completed."""
    time.sleep(FIRST_LOOK_S)
    while True:
        with engine.connect() as connection:
            row = connection.execute(
                select(Job.status, Job.created_at, Job.claimed_at, Job.started_at).where(Job.id == job_id)
            ).one()
        if row.status == "completed":
            return row.created_at, row.claimed_at, row.started_at
        time.sleep(0.002)


def run_procrastinate(args: argparse.Namespace) -> None:
    python = procrastinate_python()
    with postgres_database(args.postgres, args.database_prefix) as url:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        worker = subprocess.Popen(
            [python, str(PROCRASTINATE_SIDE), "serve", dsn], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit("the procrastinate worker did not start")
            subprocess.run(
                [python, str(PROCRASTINATE_SIDE), "pickup", dsn, "1", str(FIRST_LOOK_S)],
                check=True,
                capture_output=True,
            )  # warm-up
            time.sleep(1)
            worker_cpu = cpu_share([worker.pid], args.idle_s)
            measured = subprocess.run(
                [python, str(PROCRASTINATE_SIDE), "pickup", dsn, str(args.jobs), str(FIRST_LOOK_S)],
                check=True,
                capture_output=True,
                text=True,
            )
            pickups = [float(line) for line in measured.stdout.split()]
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    print(f"procrastinate postgresql idle CPU: worker {worker_cpu:6.2%} of a core", flush=True)
    print(f"procrastinate postgresql pickup: {percentiles(pickups)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs per system and backend (default 200)")
    parser.add_argument("--idle-s", type=float, default=5.0, help="seconds of idle CPU measurement (default 5)")
    parser.add_argument("--backends", default="postgresql,sqlite", help="Jobwarden backends (default both)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    parser.add_argument("--skip-procrastinate", action="store_true")
    parser.add_argument("--logs", default=None, help="keep the server's log in this directory")
    parser.add_argument("--limits", action="store_true", help="each backend again with its jobs in a limited queue")
    parser.add_argument("--keys", type=int, default=100, help="concurrency keys with --limits (default 100)")
    parser.add_argument("--pairs", type=int, default=1, help="with --limits: runs without and with limits, alternated")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        every_off: list[float] = []
        every_on: list[float] = []
        for _ in range(args.pairs if args.limits else 1):
            off = run_jobwarden(backend, args)
            every_off += off
            if args.limits:
                on = run_jobwarden(backend, args, limits=True)
                every_on += on
                print(
                    f"ratio pickup p50 limits on/off, {backend}: {median_high(on) / median_high(off):.2f}", flush=True
                )
        if args.limits and args.pairs > 1:
            print(
                f"ratio pickup p50 limits on/off, {backend}, {args.pairs} pairs' pickups together: "
                f"{median_high(every_on) / median_high(every_off):.2f} ({median_high(every_on) * 1000:.1f} / "
                f"{median_high(every_off) * 1000:.1f} ms)",
                flush=True,
            )
    if not args.skip_procrastinate:
        run_procrastinate(args)


if __name__ == "__main__":
    main()
