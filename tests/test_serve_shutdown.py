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

import pytest

from tests.conftest import sqlite_only
from tests.support.server import PROJECT_ROOT, running_server

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
