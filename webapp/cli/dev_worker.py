"""The local worker of `jobwarden dev`, kept alive: a worker that dies (a crash, an
out-of-memory kill, a `kill -9` while trying recovery out) is started again and the
dev log says so, instead of `jobwarden dev` exiting and taking the dashboard with it.

Also the one place that spells the worker's command line, so the line printed for a
second worker is the one the local worker runs.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..domain.backoff import backoff_delay

DEMO_HANDLERS = "webapp.worker.demo"
# A worker that ran this long before dying was healthy: the next restart is immediate again.
HEALTHY_RUN_S = 60.0
# Restarts of a worker that keeps dying at once wait 1, 2, 4 … up to 30 s.
RESTART_BASE_S = 1.0
RESTART_CAP_S = 30.0


def worker_argv(server_url: str, concurrency: int) -> list[str]:
    """The local worker: this interpreter running `jobwarden worker` on the demo handlers."""
    return [
        sys.executable,
        "-m",
        "webapp",
        "worker",
        "--server",
        server_url,
        "--handlers",
        DEMO_HANDLERS,
        "--concurrency",
        str(concurrency),
        "--grace",
        "3",
    ]


def second_worker_command(server_url: str, internal_key: str) -> str:
    """A shell line, ready to paste into another terminal, that starts one more worker on this server."""
    installed = Path(sys.executable).with_name("jobwarden")
    program = [str(installed)] if installed.is_file() else [sys.executable, "-m", "webapp"]
    argv = [*program, "worker", "--server", server_url, "--handlers", DEMO_HANDLERS]
    return f"JOBWARDEN_INTERNAL_API_KEY={shlex.quote(internal_key)} {shlex.join(argv)}"


class LocalWorker:
    """One worker process, started again whenever it exits until `stop` is called."""

    def __init__(self, argv: list[str], env: dict[str, str], say: Callable[[str], None]) -> None:
        self.argv = argv
        self.env = env
        self.say = say
        self.process = self._start()
        self.started_at = time.monotonic()
        self.quick_deaths = 0

    def _start(self) -> subprocess.Popen:
        # A session of its own: Ctrl-C reaches `jobwarden dev` only, which stops the worker in order.
        return subprocess.Popen(self.argv, env=self.env, start_new_session=True)

    def watch(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Until `stop` is set: start the worker again each time it exits, saying why."""
        while not stop.wait(poll_s):
            code = self.process.poll()
            if code is None:
                continue
            ran_s = time.monotonic() - self.started_at
            self.quick_deaths = 0 if ran_s >= HEALTHY_RUN_S else self.quick_deaths + 1
            delay = backoff_delay(self.quick_deaths, base=RESTART_BASE_S, cap=RESTART_CAP_S) if self.quick_deaths else 0
            self.say(
                f"local worker pid {self.process.pid} {describe_exit(code)} after {ran_s:.0f} s; "
                f"starting a new one{f' in {delay:.0f} s' if delay >= 1 else ''}"
            )
            if stop.wait(delay):
                return
            self.process = self._start()
            self.started_at = time.monotonic()
            self.say(f"local worker restarted, pid {self.process.pid}")

    def stop(self, timeout_s: float = 20) -> None:
        """SIGTERM, so the worker hands its running jobs back while the server still answers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def describe_exit(code: int) -> str:
    """Popen's return code in words: a negative one is the signal that ended the process."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:  # a real-time signal has no name
        return f"was killed by signal {-code}"
