"""The served processes exempt what start-up built from the garbage collector's full
collections (webapp/server/gunicorn_config.py): a real gunicorn with the package's settings,
observed by two extra hooks (tests/support/gc_probe_gunicorn.py) at points the package's own
hooks have passed — the master about to fork, a worker serving a request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.server import PROJECT_ROOT, free_port, wait_for_port

PROBE_CONFIG = "python:tests.support.gc_probe_gunicorn"


def frozen_counts(probe_dir: Path, role: str) -> list[int]:
    return [int(path.read_text()) for path in probe_dir.glob(f"{role}-*")]


def test_master_and_worker_freeze_the_objects_start_up_left(app, database_url, tmp_path):
    probe_dir = tmp_path / "gc"
    probe_dir.mkdir()
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JOBWARDEN_ENV": "testing",
        "JOBWARDEN_SECRET_KEY": "test-secret",
        "JOBWARDEN_INTERNAL_API_KEY": "test-internal-key",
        "JOBWARDEN_MONITOR": "off",
        "JOBWARDEN_TEST_GC_PROBE_DIR": str(probe_dir),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", PROBE_CONFIG, "--bind", f"127.0.0.1:{port}"]
            + ["--workers", "1", "--threads", "2"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, server, log_path)
        answer = requests.post(f"http://127.0.0.1:{port}/api/jobs", json={"type": "gc.probe"}, timeout=10)
        assert answer.status_code == 201, answer.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    [master] = frozen_counts(probe_dir, "master")
    workers = frozen_counts(probe_dir, "worker")
    # The master built an app (for the monitor) before forking: its objects are frozen by then.
    assert master > 10_000, log_path.read_text()
    # The worker inherits those, builds its own app after the fork (some thousands of objects
    # more: the modules are loaded already) and freezes that too, before serving.
    assert workers and min(workers) > master, (master, workers)
