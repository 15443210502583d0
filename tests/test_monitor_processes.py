"""Where the monitor runs, checked on real processes: once per server, a pass at start-up.

Every pass records the process that ran it (`instance` = host:pid), so the
passes in the store show which processes run a monitor.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.store.extensions import db
from webapp.store.models import Job, MonitorPass

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job
from tests.support.server import PROJECT_ROOT, free_port, running_server, wait_for_port

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

HOST = socket.gethostname()


def passes() -> list[MonitorPass]:
    db.session.rollback()  # see other processes' commits
    return list(db.session.scalars(select(MonitorPass).order_by(MonitorPass.id)))


def wait_for_passes(count: int, timeout: float = 20) -> list[MonitorPass]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = passes()
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} monitor passes within {timeout}s, saw {len(passes())}")


def crash_leftovers() -> dict[str, int]:
    """What a crash leaves behind: runs whose workers died minutes ago, a job held for hours."""
    running = make_job("running")
    unstarted = make_job("claimed")
    pending = make_job("pending")
    cancelled = make_job("running")
    jobs.cancel_job(cancelled.id)
    long_ago = utcnow() - timedelta(minutes=5)
    db.session.execute(
        update(Job)
        .where(Job.id.in_([running.id, unstarted.id, cancelled.id]))
        .values(heartbeat_at=long_ago, claimed_at=long_ago, finished_at=long_ago)
    )
    db.session.execute(update(Job).where(Job.id == pending.id).values(created_at=utcnow() - timedelta(hours=2)))
    db.session.commit()
    return {"running": running.id, "unstarted": unstarted.id, "pending": pending.id, "cancelled": cancelled.id}


def assert_reconciled(ids: dict[str, int]) -> None:
    db.session.rollback()
    assert jobs.get_job(ids["running"]).status == "queued"
    assert jobs.get_job(ids["unstarted"]).status == "queued"
    assert jobs.get_job(ids["pending"]).status == "failed"
    assert jobs.get_job(ids["cancelled"]).lease_token is None


def monitor_env(database_url: str, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY,
        "JOBWARDEN_SECRET_KEY": "test-secret",
        "PYTHONPATH": str(PROJECT_ROOT),
        **settings,
    }


def test_the_server_reconciles_a_crash_with_a_pass_at_start_up(app, database_url, tmp_path):
    ids = crash_leftovers()

    with running_server(
        database_url, tmp_path / "server.log", JOBWARDEN_MONITOR="on", JOBWARDEN_MONITOR_INTERVAL="3600"
    ) as server:
        (first,) = wait_for_passes(1)

    assert first.trigger == "startup"
    assert sorted(first.changes["orphaned"] + first.changes["never_started"]) == sorted(
        [ids["running"], ids["unstarted"]]
    )
    assert_reconciled(ids)
    assert first.instance == f"{HOST}:{server.process.pid}"


def test_under_gunicorn_only_the_master_runs_the_monitor_not_each_worker(app, database_url, tmp_path):
    with running_server(
        database_url, tmp_path / "server.log", JOBWARDEN_MONITOR="on", JOBWARDEN_MONITOR_INTERVAL="0.2"
    ) as server:
        found = wait_for_passes(8)

    assert {record.instance for record in found} == {f"{HOST}:{server.process.pid}"}


def test_the_development_server_runs_the_monitor_in_the_reloader_child_only(app, database_url, tmp_path):
    port = free_port()
    log_path = tmp_path / "dev.log"
    env = monitor_env(database_url, JOBWARDEN_MONITOR="on", JOBWARDEN_MONITOR_INTERVAL="0.2")
    with log_path.open("w") as log:
        parent = subprocess.Popen(
            [sys.executable, "-m", "webapp", "run", "--reload", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, parent, log_path)
        found = wait_for_passes(6)
    finally:
        os.killpg(parent.pid, signal.SIGTERM)
        parent.wait(timeout=15)

    instances = {record.instance for record in found}
    assert len(instances) == 1
    assert instances != {f"{HOST}:{parent.pid}"}


def test_jobwarden_monitor_reconciles_at_start_then_passes_every_interval_until_stopped(app, database_url, tmp_path):
    ids = crash_leftovers()
    log_path = tmp_path / "monitor.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "webapp", "monitor", "--interval", "0.2"],
            cwd=PROJECT_ROOT,
            env=monitor_env(database_url),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        found = wait_for_passes(4)
        assert_reconciled(ids)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)

    assert [record.trigger for record in found[:4]] == ["startup", "schedule", "schedule", "schedule"]
    assert {record.instance for record in found} == {f"{HOST}:{process.pid}"}
    assert code == 0, Path(log_path).read_text()
