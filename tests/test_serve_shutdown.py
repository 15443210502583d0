"""Ctrl-C stops the server at once: the terminal's SIGINT reaches every process of the group,
then the master's SIGQUIT reaches each worker, and no worker hangs on them
(webapp.server.gunicorn_worker says how gthread's did)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from webapp import jobs
from webapp.store.extensions import db
from webapp.store.models import Worker

from tests.conftest import sqlite_only
from tests.support.server import PROJECT_ROOT, running_server
from tests.support.worker_process import start_worker, stop_worker, wait_for

pytestmark = pytest.mark.slow

# A quit signal while the main thread hands a request to the pool, holding the pool's lock.
QUIT_INSIDE_SUBMIT = textwrap.dedent(
    """
    import logging, os, signal
    from gunicorn.config import Config
    from webapp.server.gunicorn_worker import QuitSafelyThreadWorker

    worker = QuitSafelyThreadWorker(0, os.getppid(), [], None, 30, Config(), logging.getLogger("worker"))
    worker.tpool = worker.get_thread_pool()
    signal.signal(signal.SIGINT, worker.handle_quit)
    with worker.tpool._shutdown_lock:  # as ThreadPoolExecutor.submit holds it
        os.kill(os.getpid(), signal.SIGINT)
        signal.pause()
    """
)


def test_a_quit_signal_while_the_main_thread_submits_a_request_does_not_hang_the_worker():
    done = subprocess.run(
        [sys.executable, "-c", QUIT_INSIDE_SUBMIT],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@sqlite_only  # the workers' signals, whatever the store
def test_ctrl_c_stops_a_server_that_served_requests_at_once(app, database_url, tmp_path):
    """Stops of a real server (the package's worker class) after requests, each signalled as a
    terminal does (the whole process group). Before, one stop in 6 to 12 hung for the graceful
    timeout, then a SIGKILL: this catches that only by chance, the test above every time."""
    for attempt in range(6):
        log_path = tmp_path / f"server-{attempt}.log"
        with running_server(database_url, log_path) as server:
            for path in ("/healthz", "/jobs", "/api/jobs", "/queues"):
                urllib.request.urlopen(server.url + path, timeout=10).read()
            assert server.process is not None
            os.killpg(server.process.pid, signal.SIGINT)
            began = time.monotonic()
            server.process.wait(timeout=30)
            stopped_in = time.monotonic() - began
        log = log_path.read_text()
        assert "SIGKILL" not in log and stopped_in < 3, (attempt, stopped_in, log[-1500:])


def _held_requests(server_pid: int, port: int) -> int:
    """Connections to the server's port that are established: a connected idle worker holds two
    (its presence and its waiting claim) besides its heartbeat's."""
    hex_port = f":{port:04X}"
    established = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        established += local.endswith(hex_port) and state == "01"
    return established


@sqlite_only  # what a server holds open, whatever the store
@pytest.mark.parametrize("signalled", ["the master, SIGTERM (a deploy)", "the group, SIGINT (Ctrl-C)"])
def test_a_server_holding_a_workers_presence_and_claim_stops_at_once_and_the_worker_goes_on(
    app, database_url, tmp_path, signalled
):
    """A server holds each worker's presence and its idle claim for up to 20 s. Before, every
    stop with a worker connected lasted those 20 s and ended with its processes SIGKILLed: every
    deploy. Now they are answered when the stop begins; the worker is not taken for dead, and it
    runs the next job once a server answers again."""
    log_path = tmp_path / "server.log"
    with running_server(database_url, log_path) as server:
        assert server.process is not None
        worker = start_worker(server.url, tmp_path / "worker.log", "deploy-survivor", "--retry-max", "0.5")
        try:
            wait_for(lambda: _held_requests(server.process.pid, server.port) >= 2, what="the worker's held requests")
            time.sleep(0.5)  # both sent and held (the claim follows the presence)
            began = time.monotonic()
            if signalled.startswith("the master"):
                server.process.send_signal(signal.SIGTERM)
            else:
                os.killpg(server.process.pid, signal.SIGINT)
            server.process.wait(timeout=30)
            stopped_in = time.monotonic() - began
            log = log_path.read_text()
            assert "SIGKILL" not in log and stopped_in < 5, (stopped_in, log[-1500:])

            server.start()  # the next release, on the same address
            created = jobs.create_job(type="demo.sleep", payload={"seconds": 0})
            wait_for(lambda: jobs.get_job(created.id).status == "completed", what="the job to run")
            db.session.rollback()
            assert db.session.get(Worker, "deploy-survivor").state == "alive"
            assert worker.poll() is None
        finally:
            stop_worker(worker)
