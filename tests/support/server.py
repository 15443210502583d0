"""A real Jobwarden server (gunicorn) on a free loopback port, for tests that
talk HTTP the way workers, scripts and browsers do."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from webapp.cli.serve import GUNICORN_CONFIG

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log_path: Path, timeout: float = 30) -> None:
    """Return once a worker answers HTTP on `port`, not merely once the master listens.

    gunicorn's master binds the port before its workers have built the app; under
    load that takes seconds, and a client with a short timeout would fail.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
        finally:
            connection.close()
    raise RuntimeError(f"server did not answer on {port} within {timeout}s:\n{log_path.read_text()[-4000:]}")


@dataclass
class Server:
    url: str
    port: int
    env: dict
    log_path: Path
    process: subprocess.Popen
    # Process and thread counts; None: the package's gunicorn settings', as deployed.
    gunicorn_args: tuple[str, ...] | None = ("--workers", "2", "--worker-class", "gthread", "--threads", "8")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def start(self) -> None:
        """(Re)start the server on the same port and database."""
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--config",
                GUNICORN_CONFIG,
                *(self.gunicorn_args or ()),
                "--graceful-timeout",
                "5",
                "webapp:create_app()",
            ],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, self.process, self.log_path)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def running_server(database_url: str, log_path: Path, *, deployed: bool = False, **settings: str) -> Iterator[Server]:
    """Serve `database_url` (schema already built) until the block ends.

    `settings` are extra environment variables, e.g. JOBWARDEN_MONITOR="on";
    `deployed` serves with the package's gunicorn settings' processes and threads.
    """
    from tests.conftest import INTERNAL_KEY

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JOBWARDEN_ENV": "testing",
        "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY,
        "JOBWARDEN_SECRET_KEY": "test-secret",
        "JOBWARDEN_MONITOR": "off",
        "PYTHONPATH": str(PROJECT_ROOT),
        **settings,
    }
    server = Server(url=f"http://127.0.0.1:{port}", port=port, env=env, log_path=log_path, process=None)  # type: ignore[arg-type]
    if deployed:
        server.gunicorn_args = None
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGINT)  # gunicorn's quick shutdown: a test's end needs no graceful drain
