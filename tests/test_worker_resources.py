"""What a worker costs the machine it shares with the jobs: CPU while it waits,
the modules and memory it loads. Measured on real worker processes from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from webapp import jobs
from webapp.store.extensions import db
from webapp.store.models import Job, Worker

from tests import test_worker_runner as runner
from tests.support.server import PROJECT_ROOT

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

server, start_worker, wait_for = runner.server, runner.start_worker, runner.wait_for  # fixtures, helper
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
    wait_for(
        lambda: len(db.session.scalars(select(Job).where(Job.status == "running")).all()) == 2, what="both jobs running"
    )
    share = cpu_share(worker.process.pid)
    assert share < CPU_SHARE_BOUND, f"a worker with every slot sleeping used {share:.0%} of a core"


# --- what a worker loads ----------------------------------------------------------------------

SERVER_PACKAGES = ("flask", "sqlalchemy", "pydantic", "flask_limiter", "flask_talisman", "werkzeug", "jinja2")
RSS_BOUND_KB = 40 * 1024


def imported_top_level(import_log: str) -> set[str]:
    """Top-level packages named in a `-X importtime` log."""
    names = set()
    for line in import_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_importing_the_worker_package_loads_no_server_package():
    """What keeps a worker quick to start (benchmarks/worker_import.py times it: with the
    server's packages its import took 0.56 s)."""
    answer = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import webapp.worker"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = imported_top_level(answer.stderr)
    assert "webapp" in loaded  # the log is of the import
    assert loaded & set(SERVER_PACKAGES) == set()


def test_a_running_worker_loads_no_server_package_and_stays_small(start_worker, monkeypatch):
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # the worker logs every import it makes
    worker = start_worker("--poll-interval", "1", heartbeat=1.0)
    wait_for(lambda: db.session.get(Worker, "w1"), what="the worker row")
    status = Path(f"/proc/{worker.process.pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    assert rss_kb <= RSS_BOUND_KB, f"an idle worker's RSS is {rss_kb // 1024} MB"
    loaded = imported_top_level(worker.log)
    assert {"webapp", "requests", "click"} <= loaded  # the log is the worker's
    assert loaded & set(SERVER_PACKAGES) == set()
