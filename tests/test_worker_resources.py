"""What a worker costs the machine it shares with the jobs: CPU while it waits,
the modules and memory it loads. Measured on real worker processes from /proc."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from webapp import jobs
from webapp.extensions import db
from webapp.models import Job, Worker
from tests.support.server import PROJECT_ROOT
from tests.test_worker_runner import server, start_worker, wait_for  # noqa: F401  (fixtures)

CPU_SHARE_BOUND = 0.05  # generous: the defect this catches burnt a whole core (≈ 1.0)
MEASURE_S = 3.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process itself used so far (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def cpu_share(pid: int, seconds: float = MEASURE_S) -> float:
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def test_an_idle_worker_sleeps_instead_of_spinning(start_worker):
    worker = start_worker("--concurrency", "4", "--poll-interval", "1", heartbeat=1.0)
    wait_for(lambda: db.session.get(Worker, "w1"), what="the worker row")
    share = cpu_share(worker.process.pid)
    assert share < CPU_SHARE_BOUND, f"an idle worker used {share:.0%} of a core"


def test_a_worker_whose_slots_are_all_busy_sleeps_while_its_jobs_do(start_worker):
    for _ in range(2):
        jobs.create_job(type="demo.command_sleep", payload={"seconds": 60})
    worker = start_worker("--concurrency", "2", "--poll-interval", "1", heartbeat=1.0)
    wait_for(lambda: len(db.session.scalars(select(Job).where(Job.status == "running")).all()) == 2,
             what="both jobs running")
    share = cpu_share(worker.process.pid)
    assert share < CPU_SHARE_BOUND, f"a worker with every slot sleeping used {share:.0%} of a core"
