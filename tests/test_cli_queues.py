"""`jobwarden queues list|pause|resume|set` against a real server."""

from __future__ import annotations

import os
import subprocess
import sys

from webapp import jobs
from webapp.jobs import queues

from tests.support.server import PROJECT_ROOT


def jobwarden(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "webapp", *args, "--server", server.url],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )


def test_queues_from_the_command_line(server):
    jobs.create_jobs([{"type": "t", "queue": "gpu"}] * 2)

    assert jobwarden(server, "queues", "set", "gpu", "--concurrency", "2", "--rate-limit", "10/1").returncode == 0
    paused = jobwarden(server, "queues", "pause", "gpu", "--reason", "incident")
    assert paused.returncode == 0, paused.stderr
    listed = jobwarden(server, "queues", "list")
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith("gpu")]
    assert line.split()[:4] == ["gpu", "paused", "2", "0/2"]
    assert "rate 10/1s" in line
    assert jobwarden(server, "queues", "resume", "gpu").returncode == 0
    assert jobwarden(server, "queues", "set", "gpu", "--concurrency", "none").returncode == 0
    view = queues.get_queue("gpu")
    assert (view.paused, view.concurrency, view.rate_limit.limit) == (False, None, 10)


def test_a_refused_setting_is_an_error_message_and_exit_code_1(server):
    refused = jobwarden(server, "queues", "set", "gpu", "--concurrency", "-3")
    assert refused.returncode == 1 and "concurrency" in refused.stderr
    unknown = jobwarden(server, "queues", "pause", "nobody")
    assert unknown.returncode == 1 and "name" in unknown.stderr
