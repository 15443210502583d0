"""Job lifecycles per second through the store, beside procrastinate on the same PostgreSQL.

What one run measures, per backend and per number of worker processes:

1. Create: --jobs no-op jobs are created up front with `jobs.create_jobs`, in
   batches of --create-batch (one transaction each), on a fresh database (SQLite:
   a new temp file; PostgreSQL: a new throwaway database). Timed on its own.
2. Process: P spawned processes each build their own app on the same database,
   connect, then wait at a start line. From the start signal each one loops
   `jobs.claim_jobs(batch_size=--batch-size)` and, for every job claimed,
   `jobs.start_job` then `jobs.complete_job` (no work in between), until a
   claim comes back empty. Timed from the start signal to the last process's
   empty claim. With --reports batched (as the server applies a worker's
   coalesced `/reports`: webapp/worker/reports.py), a claimed batch's starts
   are one transaction, then its completes another — on PostgreSQL one statement
   each (`jobs.start_jobs`, `jobs.complete_jobs`); with single, each start and
   complete commits on its own.

Printed: processing rate (jobs / process time) and the whole lifecycle rate
(jobs / (create time + process time)). SQLite runs once per --synchronous mode
(FULL is Jobwarden's default: every commit is fsynced; NORMAL in WAL mode can
lose the last commits on power loss, never corrupts).

procrastinate (pinned below, installed into benchmarks/.venv-procrastinate on
first use, never a Jobwarden dependency) runs the same no-op job on the same
PostgreSQL server, in its own fresh database: --procrastinate-jobs jobs deferred
up front with batch_defer (as many as Jobwarden's unless --procrastinate-jobs),
then P worker processes (concurrency 1 each, exit when the queue is empty),
timed the same way. The ratio printed is Jobwarden's
processing rate over procrastinate's at the same number of processes.

    .venv/bin/python benchmarks/store.py
    .venv/bin/python benchmarks/store.py --jobs 2000 --processes 1,4 --skip-procrastinate
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks._support import DEFAULT_POSTGRES, add_database_prefix_option, postgres_database  # noqa: E402

PROCRASTINATE_PINS = ("procrastinate==3.10.0", "psycopg[binary]==3.3.9")
PROCRASTINATE_VENV = ROOT / "benchmarks" / ".venv-procrastinate"
PROCRASTINATE_SIDE = ROOT / "benchmarks" / "procrastinate_side.py"


@dataclass
class Run:
    system: str
    backend: str
    processes: int
    jobs: int
    create_s: float
    process_s: float
    statements: int | None = None  # SQL statements the worker processes sent (Jobwarden only)

    @property
    def rate(self) -> float:
        return self.jobs / self.process_s

    @property
    def lifecycle_rate(self) -> float:
        return self.jobs / (self.create_s + self.process_s)


def app_config(database_url: str, synchronous: str, pre_ping: bool) -> dict:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "JOBWARDEN_MONITOR": False,
        "JOBWARDEN_SQLITE_SYNCHRONOUS": synchronous,
        "JOBWARDEN_INTERNAL_API_KEY": "benchmark-internal-key",  # the app refuses to start without one
        "SECRET_KEY": "benchmark",
    }
    if not pre_ping:
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": False}
    return config


def work(
    database_url: str,
    synchronous: str,
    pre_ping: bool,
    worker_id: str,
    batch_size: int,
    batched: bool,
    ready,
    start,
    results,
) -> None:
    """One worker process: claim batches, start and complete each job, until the queue is empty."""
    from sqlalchemy import event

    from webapp import create_app, jobs
    from webapp.store.extensions import db

    app = create_app(app_config(database_url, synchronous, pre_ping))
    with app.app_context():
        statements = 0

        def count(*_args) -> None:
            nonlocal statements
            statements += 1

        event.listen(db.engine, "before_cursor_execute", count)
        ready.put(worker_id)
        start.wait()
        done = 0
        while batch := jobs.claim_jobs(worker_id, batch_size=batch_size):
            if batched:
                jobs.start_jobs([jobs.StartReport(job.id, job.lease_token) for job in batch])
                jobs.complete_jobs([jobs.CompleteReport(job.id, job.lease_token) for job in batch])
            else:
                for job in batch:
                    jobs.start_job(job.id, job.lease_token)
                    jobs.complete_job(job.id, job.lease_token)
            done += len(batch)
        results.put((worker_id, done, time.monotonic(), statements))


def collect(results, workers) -> list:
    """Each worker's (id, jobs done, end time, statements sent); stops the run when a worker died without answering."""
    finished = []
    while len(finished) < len(workers):
        try:
            finished.append(results.get(timeout=5))
        except queue.Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise SystemExit(f"a worker process exited with {dead[0]}; the run is not valid") from None
    return finished


def run_jobwarden(
    database_url: str, backend: str, synchronous: str, processes: int, batched: bool, args, limits: bool = False
) -> Run:
    from webapp import create_app, jobs
    from webapp.store.extensions import db
    from webapp.store.models import Job

    app = create_app(app_config(database_url, synchronous, args.pre_ping == "on"))
    with app.app_context():
        db.create_all()
        spec: dict = {"type": "bench.noop"}
        if limits:
            # Flow control on (webapp.store.flow): every claim goes through the limited part,
            # counting its queue's and key's live jobs. One live job per key, as procrastinate's
            # `lock`; a queue limit that never binds.
            from webapp.jobs import queues

            queues.set_limits("limited", {"concurrency": 10_000, "key_concurrency": 1}, actor="bench")
            spec = {**spec, "queue": "limited"}
        begun = time.monotonic()
        for offset in range(0, args.jobs, args.create_batch):
            batch = range(offset, min(offset + args.create_batch, args.jobs))
            keyed = [{**spec, "concurrency_key": f"key-{n % args.keys}"} if limits else spec for n in batch]
            jobs.create_jobs(keyed)
        create_s = time.monotonic() - begun
        db.session.remove()

        context = multiprocessing.get_context("spawn")
        ready, start, results = context.Queue(), context.Event(), context.Queue()
        workers = [
            context.Process(
                target=work,
                args=(
                    database_url,
                    synchronous,
                    args.pre_ping == "on",
                    f"bench-{n}",
                    args.batch_size,
                    batched,
                    ready,
                    start,
                    results,
                ),
            )
            for n in range(processes)
        ]
        for process in workers:
            process.start()
        for _ in workers:
            ready.get(timeout=120)
        begun = time.monotonic()
        start.set()
        finished = collect(results, workers)
        process_s = max(end for _, _, end, _ in finished) - begun
        for process in workers:
            process.join(timeout=60)

        completed = db.session.execute(
            select(func.count()).select_from(Job).where(Job.status == "completed")
        ).scalar_one()
        if completed != args.jobs or sum(done for _, done, _, _ in finished) != args.jobs:
            raise SystemExit(f"{backend}: {completed} of {args.jobs} jobs completed; the run is not valid")
        db.session.remove()
        db.engine.dispose()
    statements = sum(sent for _, _, _, sent in finished)
    label = (
        f"{backend}, {'batched' if batched else 'single'} reports{f', limits on ({args.keys} keys)' if limits else ''}"
    )
    return Run("jobwarden", label, processes, args.jobs, create_s, process_s, statements)


def procrastinate_python() -> str:
    """The benchmark's own virtualenv with the pinned procrastinate, created on first use."""
    python = PROCRASTINATE_VENV / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('procrastinate'))"]
    wanted = PROCRASTINATE_PINS[0].split("==")[1]
    if not python.exists() or subprocess.run(probe, capture_output=True, text=True).stdout.strip() != wanted:
        print(f"installing {', '.join(PROCRASTINATE_PINS)} into {PROCRASTINATE_VENV} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PROCRASTINATE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PROCRASTINATE_PINS], check=True)
    return str(python)


def run_procrastinate(python: str, database_url: str, processes: int, jobs: int, keys: int = 0) -> Run:
    """`keys`: each job takes `lock=key-(n % keys)` (procrastinate's one-at-a-time per lock), 0 for none."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    prepared = subprocess.run(
        [python, str(PROCRASTINATE_SIDE), "prepare", dsn, str(jobs), str(keys)],
        check=True,
        capture_output=True,
        text=True,
    )
    create_s = float(prepared.stdout.split()[-1])
    workers = [
        subprocess.Popen(
            [python, str(PROCRASTINATE_SIDE), "work", dsn],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit("a procrastinate worker did not start")
        begun = time.monotonic()
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        process_s = max(float(worker.stdout.readline()) for worker in workers) - begun
        for worker in workers:
            worker.wait(timeout=60)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    engine = create_engine(database_url)
    with engine.connect() as connection:
        succeeded = connection.execute(
            text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")
        ).scalar_one()
    engine.dispose()
    if succeeded != jobs:
        raise SystemExit(f"procrastinate: {succeeded} of {jobs} jobs succeeded; the run is not valid")
    return Run(
        "procrastinate",
        f"postgresql{f', lock per key ({keys} keys)' if keys else ''}",
        processes,
        jobs,
        create_s,
        process_s,
    )


def report(run: Run) -> None:
    per_job = f"  {run.statements / run.jobs:.1f} statements/job" if run.statements is not None else ""
    print(
        f"{run.system:<13} {run.backend:<40} {run.processes:>3} proc  {run.jobs:>6} jobs  "
        f"create {run.create_s:6.2f} s  process {run.process_s:6.2f} s  "
        f"{run.rate:7.0f} jobs/s  (lifecycle incl. create {run.lifecycle_rate:6.0f}/s){per_job}",
        flush=True,
    )


def report_limits(runs: list[Run], limits: bool) -> None:
    """With --limits: the last pair's ratio, limits on over limits off, measured back to back."""
    if limits:
        off, on = runs[-2], runs[-1]
        print(f"ratio limits on/off, {on.processes} proc: {on.rate / off.rate:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000, help="Jobwarden jobs per run (default 3000)")
    parser.add_argument(
        "--procrastinate-jobs", type=int, default=None, help="procrastinate jobs per run (default: --jobs)"
    )
    parser.add_argument("--processes", default="1,4,8", help="worker process counts, both systems (default 1,4,8)")
    parser.add_argument("--batch-size", type=int, default=10, help="jobs per claim (default 10)")
    parser.add_argument("--create-batch", type=int, default=500, help="jobs per create transaction (default 500)")
    parser.add_argument(
        "--synchronous", default="FULL,NORMAL", help="SQLite synchronous modes to run (default FULL,NORMAL)"
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--pre-ping",
        choices=("on", "off"),
        default="on",
        help="PostgreSQL pool_pre_ping, one SELECT 1 per transaction (Jobwarden's default: on)",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="a server to create throwaway databases on")
    parser.add_argument("--skip-procrastinate", action="store_true")
    parser.add_argument(
        "--reports",
        default="single,batched",
        help="how starts and completes commit: single (each its own) and/or batched (one commit per claimed "
        "batch, as /reports applies a worker's reports); default both",
    )
    add_database_prefix_option(parser)
    parser.add_argument(
        "--limits",
        action="store_true",
        help="after each Jobwarden run, the same run with its jobs in a queue with concurrency and key_concurrency "
        "set (never binding), and the ratio: the limited claim's cost",
    )
    parser.add_argument("--keys", type=int, default=100, help="concurrency keys with --limits (default 100)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each Jobwarden configuration (default 1)")
    args = parser.parse_args()
    modes = [mode == "batched" for mode in args.reports.split(",")]
    counts = [int(n) for n in args.processes.split(",")]
    backends = args.backends.split(",")

    print(
        f"claim batch size {args.batch_size}; jobs created up front in batches of {args.create_batch}; "
        f"PostgreSQL pool_pre_ping {args.pre_ping}",
        flush=True,
    )
    runs: list[Run] = []
    flow_modes = [False, True] if args.limits else [False]
    if "sqlite" in backends:
        for synchronous in args.synchronous.upper().split(","):
            for processes in counts:
                for batched in modes:
                    for _ in range(args.repeat):
                        for limits in flow_modes:
                            with tempfile.TemporaryDirectory(prefix="jobwarden-bench-") as directory:
                                url = f"sqlite:///{Path(directory) / 'jobwarden.db'}"
                                backend = f"sqlite synchronous={synchronous}"
                                runs.append(run_jobwarden(url, backend, synchronous, processes, batched, args, limits))
                            report(runs[-1])
                        report_limits(runs, args.limits)
    if "postgresql" in backends:
        python = None if args.skip_procrastinate else procrastinate_python()
        # Each Jobwarden run right before procrastinate's at the same count, so both meet the same load.
        for processes in counts:
            for batched in modes:
                for _ in range(args.repeat):
                    for limits in flow_modes:
                        with postgres_database(args.postgres_url, args.database_prefix) as url:
                            runs.append(run_jobwarden(url, "postgresql", "FULL", processes, batched, args, limits))
                        report(runs[-1])
                    report_limits(runs, args.limits)
            if python:
                for keys in [0, args.keys] if args.limits else [0]:
                    with postgres_database(args.postgres_url, args.database_prefix) as url:
                        runs.append(
                            run_procrastinate(python, url, processes, args.procrastinate_jobs or args.jobs, keys)
                        )
                    report(runs[-1])

    # Each Jobwarden run beside procrastinate's like it: limits on beside its locks.
    theirs = {(run.processes, "lock" in run.backend): run for run in runs if run.system == "procrastinate"}
    for run in runs:
        peer = (run.processes, "limits on" in run.backend)
        if run.system != "jobwarden" or not run.backend.startswith("postgresql") or peer not in theirs:
            continue
        other = theirs[peer]
        print(
            f"ratio Jobwarden ({run.backend})/procrastinate ({other.backend}), {run.processes} proc: "
            f"{run.rate / other.rate:.2f} ({run.rate:.0f} vs {other.rate:.0f} jobs/s); including create "
            f"{run.lifecycle_rate / other.lifecycle_rate:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
