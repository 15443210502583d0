"""Chaos: jobs keep their truth while workers are SIGKILLed and the server restarts.

N jobs of `chaos.ledger` (each attempt appends `job id,attempt` to a ledger file,
then runs an external command that leaves a long-lived grandchild behind, as
careless scripts do); W worker processes; every --kill-every seconds one random
worker's process group gets SIGKILL and a new worker starts; the web server
(gunicorn) restarts once mid-run; the monitor runs in it with a short heartbeat
timeout. At the end the ledger and the store are checked:

- every job is completed, or failed with a reason;
- no job completed twice (one `complete` event at most);
- no job ran again after it completed (no ledger line of a later attempt);
- every attempt that ran has its attempt row;
- each job a kill interrupted was recovered (its attempt settled by the monitor)
  within heartbeat timeout + monitor interval of the kill, plus a pass's slack
  (and, for a kill just before or during the server's restart, the restart's
  downtime: the monitor runs in the server);
- no 5xx answer in the server's access log;
- no process started for a job outlives its worker by more than the worker's
  heartbeat interval + 2 s: checked that long after every SIGKILL (processes
  whose environment names the killed worker) and after the last workers are
  killed at the end (processes whose environment names the run's ledger).

    .venv/bin/python benchmarks/chaos.py
    .venv/bin/python benchmarks/chaos.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Exits 1 when any check fails. `tests/test_chaos.py` runs a short version.
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
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from benchmarks._support import add_database_prefix_option, postgres_database, running_server  # noqa: E402
from webapp import create_app, jobs  # noqa: E402
from webapp.store.extensions import db  # noqa: E402
from webapp.store.models import Job, JobAttempt, JobEvent  # noqa: E402

KEY = "chaos-internal-key"
HEARTBEAT_S = 0.5  # the workers' heartbeat interval
TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class Settings:
    jobs: int = 2000
    workers: int = 4
    concurrency: int = 2
    kill_every: float = 2.0
    heartbeat_timeout: float = 3.0
    monitor_interval: float = 1.0
    job_seconds: float = 0.2
    time_limit: float = 600.0


@dataclass
class Result:
    jobs: int = 0
    duration_s: float = 0.0
    kills: int = 0
    restarts: int = 0
    statuses: Counter = field(default_factory=Counter)
    attempts: int = 0
    recoveries_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    server_5xx: int = 0
    leftover_processes: int = 0

    def percentile(self, pct: float) -> float | None:
        if not self.recoveries_s:
            return None
        ordered = sorted(self.recoveries_s)
        return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]

    def summary(self) -> str:
        p50, p99 = self.percentile(50), self.percentile(99)
        recovery = (
            "none interrupted"
            if p50 is None
            else f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {max(self.recoveries_s):.2f} s"
        )
        return (
            f"{self.jobs} jobs in {self.duration_s:.1f} s: {dict(self.statuses)}; {self.attempts} attempts; "
            f"{self.kills} SIGKILLs, {self.restarts} server restart; "
            f"recovery after a kill ({len(self.recoveries_s)} jobs): {recovery}; "
            f"5xx answers: {self.server_5xx}; leftover job processes: {self.leftover_processes}; "
            f"problems: {len(self.problems)}"
        )


class Workers:
    """Worker processes, each in its own process group, started and SIGKILLed by id."""

    def __init__(self, server_url: str, ledger: Path, logs: Path, settings: Settings):
        self.server_url, self.ledger, self.logs, self.settings = server_url, ledger, logs, settings
        self.running: dict[str, subprocess.Popen] = {}
        self.serial = 0
        self.kills: list[tuple[str, float]] = []
        # Worker ids name the run too: the leftover count finds processes by the id in their
        # environment, and two runs at once (the test on both databases) must not count each other's.
        self.run_mark = uuid.uuid4().hex[:8]

    def start(self) -> None:
        self.serial += 1
        worker_id = f"chaos-{self.run_mark}-w{self.serial}"
        env = {
            **os.environ,
            "JOBWARDEN_INTERNAL_API_KEY": KEY,
            "JOBWARDEN_CHAOS_LEDGER": str(self.ledger),
            "JOBWARDEN_CHAOS_WORKER": worker_id,
            "PYTHONPATH": str(ROOT),
        }
        with (self.logs / f"{worker_id}.log").open("w") as log:
            self.running[worker_id] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "webapp",
                    "worker",
                    "--server",
                    self.server_url,
                    "--handlers",
                    "benchmarks.chaos_handlers",
                    "--concurrency",
                    str(self.settings.concurrency),
                    "--heartbeat-interval",
                    str(HEARTBEAT_S),
                    "--poll-interval",
                    "0.2",
                    "--retry-max",
                    "1",
                    "--grace",
                    "1",
                    "--worker-id",
                    worker_id,
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_one(self) -> None:
        worker_id = random.choice(sorted(self.running))
        process = self.running.pop(worker_id)
        os.killpg(process.pid, signal.SIGKILL)
        self.kills.append((worker_id, time.time()))
        process.wait()

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.running.clear()


def run(database_url: str, settings: Settings, workdir: Path) -> Result:
    """One chaos run on an empty database at `database_url`; the figures and every problem found."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "JOBWARDEN_MONITOR": False,
            "JOBWARDEN_INTERNAL_API_KEY": KEY,
            "JOBWARDEN_ENV": "testing",
        }
    )
    ledger = workdir / "ledger.csv"
    ledger.touch()
    result = Result(jobs=settings.jobs)
    server_env = {
        "JOBWARDEN_INTERNAL_API_KEY": KEY,
        "JOBWARDEN_MONITOR": "on",
        "JOBWARDEN_MONITOR_INTERVAL": str(settings.monitor_interval),
        "JOBWARDEN_HEARTBEAT_TIMEOUT": str(settings.heartbeat_timeout),
        "JOBWARDEN_RETRY_BASE_S": "0.1",
        "JOBWARDEN_RETRY_MAX_S": "1",
        "GUNICORN_CMD_ARGS": "--access-logfile -",
    }
    with app.app_context():
        db.create_all()
        jobs.create_jobs(
            [
                {"type": "chaos.ledger", "payload": {"seconds": settings.job_seconds}, "max_attempts": 50}
                for _ in range(settings.jobs)
            ],
            actor="chaos",
        )
        db.session.remove()
    with ExitStack() as stack:
        server = stack.enter_context(running_server(database_url, workdir / "server.log", **server_env))
        workers = Workers(server.url, ledger, workdir, settings)
        stack.callback(workers.stop_all)
        for _ in range(settings.workers):
            workers.start()
        started = time.monotonic()
        next_kill = started + settings.kill_every
        restart_due = True
        restart: tuple[float, float] | None = None
        checked: set[str] = set()  # killed workers whose leftovers were counted
        with app.app_context():
            while time.monotonic() - started < settings.time_limit:
                db.session.rollback()
                done = db.session.scalar(select(func.count()).select_from(Job).where(Job.status.in_(TERMINAL)))
                if done == settings.jobs:
                    break
                if restart_due and done >= settings.jobs // 2:
                    down_from = time.time()
                    server.restart()
                    restart = (down_from, time.time())
                    result.restarts += 1
                    restart_due = False
                count_leftovers(result, workers.kills, checked, time.time() - HEARTBEAT_S - 2.0)
                if time.monotonic() >= next_kill:
                    workers.kill_one()
                    workers.start()
                    next_kill = time.monotonic() + settings.kill_every
                time.sleep(0.1)
            result.duration_s = time.monotonic() - started
        result.kills = len(workers.kills)
        kills = list(workers.kills)
        workers.stop_all()  # SIGKILL: their commands must follow them
        time.sleep(HEARTBEAT_S + 2.0)
        count_leftovers(result, workers.kills, checked, time.time())
        result.leftover_processes += len(processes_with(f"JOBWARDEN_CHAOS_LEDGER={ledger}"))
    result.server_5xx = len(re.findall(r'" 5\d\d ', (workdir / "server.log").read_text()))
    with app.app_context():
        check(result, settings, ledger, kills, restart)
        db.session.remove()
        db.engine.dispose()
    return result


def count_leftovers(result: Result, kills: list[tuple[str, float]], checked: set[str], killed_by: float) -> None:
    """Add the processes still alive of each worker SIGKILLed before `killed_by` (counted once per worker)."""
    for worker_id, killed_at in kills:
        if worker_id not in checked and killed_at <= killed_by:
            checked.add(worker_id)
            result.leftover_processes += len(processes_with(f"JOBWARDEN_CHAOS_WORKER={worker_id}"))


def processes_with(variable: str) -> list[int]:
    """Live processes (not zombies) whose environment holds `variable` (NAME=value)."""
    mark = variable.encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and mark in (entry / "environ").read_bytes().split(b"\0")
                and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            ):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def check(
    result: Result,
    settings: Settings,
    ledger: Path,
    kills: list[tuple[str, float]],
    restart: tuple[float, float] | None,
) -> None:
    problems = result.problems
    ran = [tuple(int(part) for part in line.split(",")) for line in ledger.read_text().split()]
    all_jobs = {job.id: job for job in db.session.scalars(select(Job))}
    result.statuses = Counter(job.status for job in all_jobs.values())
    for job in all_jobs.values():
        if job.status not in ("completed", "failed"):
            problems.append(f"job {job.id} ended {job.status}")
        elif job.status == "failed" and not job.last_error:
            problems.append(f"job {job.id} failed without a reason")
    completes = Counter(
        job_id for (job_id,) in db.session.execute(select(JobEvent.job_id).where(JobEvent.action == "complete"))
    )
    problems += [f"job {job_id} completed {n} times" for job_id, n in completes.items() if n > 1]
    for job_id, attempt in ran:
        job = all_jobs.get(job_id)
        if job is not None and job.status == "completed" and attempt > job.attempt:
            problems.append(f"job {job_id} ran again (attempt {attempt}) after completing in attempt {job.attempt}")
    recorded = {tuple(row) for row in db.session.execute(select(JobAttempt.job_id, JobAttempt.number))}
    result.attempts = len(recorded)
    problems += [
        f"job {job_id} attempt {attempt} ran but has no attempt row" for job_id, attempt in set(ran) - recorded
    ]
    bound = settings.heartbeat_timeout + settings.monitor_interval + 1.0  # + one pass and its commit
    for worker_id, killed_at in kills:
        allowed = bound
        if restart and restart[0] - bound <= killed_at <= restart[1]:
            allowed += restart[1] - restart[0]  # the monitor runs in the server: down while it restarts
        for attempt in db.session.scalars(
            select(JobAttempt).where(JobAttempt.worker_id == worker_id, JobAttempt.outcome == "orphaned")
        ):
            recovery = attempt.finished_at.timestamp() - killed_at
            result.recoveries_s.append(recovery)
            if recovery > allowed:
                problems.append(
                    f"job {attempt.job_id} recovered {recovery:.1f} s after its worker's kill (allowed {allowed:.1f} s)"
                )
        left = db.session.scalar(
            select(func.count())
            .select_from(JobAttempt)
            .where(JobAttempt.worker_id == worker_id, JobAttempt.finished_at.is_(None))
        )
        if left:
            problems.append(f"{left} attempts of killed worker {worker_id} were never settled")
    if result.server_5xx:
        problems.append(f"{result.server_5xx} answers were 5xx")
    if result.leftover_processes:
        problems.append(f"{result.leftover_processes} processes of the run's jobs outlived their workers")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a throwaway database is made); default SQLite")
    parser.add_argument("--jobs", type=int, default=Settings.jobs)
    parser.add_argument("--workers", type=int, default=Settings.workers)
    parser.add_argument("--kill-every", type=float, default=Settings.kill_every)
    add_database_prefix_option(parser)
    args = parser.parse_args()
    settings = Settings(jobs=args.jobs, workers=args.workers, kill_every=args.kill_every)
    with tempfile.TemporaryDirectory(prefix="jobwarden-chaos-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        if args.database_url:
            url = stack.enter_context(postgres_database(args.database_url, args.database_prefix))
        else:
            url = f"sqlite:///{workdir / 'chaos.db'}"
        print(f"chaos on {url.split('@')[-1]}: {settings}", flush=True)
        result = run(url, settings, workdir)
    print(result.summary())
    for problem in result.problems[:50]:
        print("PROBLEM:", problem)
    if result.recoveries_s:
        print(f"recovery times: median {statistics.median(result.recoveries_s):.2f} s over {len(result.recoveries_s)}")
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
