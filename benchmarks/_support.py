"""What the benchmarks share: a throwaway database, a real gunicorn server on a loopback
port, the app settings and internal key they run with, the statements a block sends, and
looking at processes.

Their own, not the test suite's: the benchmarks run from a copy of Jobwarden that has no
tests/ (and no pytest). Each benchmark puts the checkout on sys.path, then imports this.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from webapp.cli.serve import GUNICORN_CONFIG

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
INTERNAL_KEY = "benchmark-internal-key"
DEFAULT_DATABASE_PREFIX = "jobwarden_bench"
# A small server for the API benchmarks; None in Server.gunicorn_args: the package's settings, as deployed.
SMALL_SERVER = ("--workers", "2", "--threads", "8")  # the package's worker class (webapp.server.gunicorn_worker)


def add_database_prefix_option(parser: argparse.ArgumentParser) -> None:
    """--database-prefix: the start of each throwaway PostgreSQL database's name, so runs are easy to find and drop."""
    parser.add_argument(
        "--database-prefix",
        default=DEFAULT_DATABASE_PREFIX,
        help=f"names of the throwaway PostgreSQL databases start with this (default {DEFAULT_DATABASE_PREFIX})",
    )


def app_config(database_url: str, **overrides: Any) -> dict[str, Any]:
    """Settings for an app a benchmark builds in-process (to create the schema or seed jobs)."""
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "JOBWARDEN_ENV": "testing",
        "JOBWARDEN_MONITOR": False,
        "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY,
        "SECRET_KEY": "benchmark-secret",
        **overrides,
    }


@contextmanager
def postgres_database(server_url: str, prefix: str = DEFAULT_DATABASE_PREFIX) -> Iterator[str]:
    """A fresh database `prefix_<random>` on the PostgreSQL server, dropped afterwards."""
    url = make_url(server_url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def kept_database(server_url: str, prefix: str, size: int) -> Iterator[str]:
    """`<prefix>_<size>` on the PostgreSQL server, created when missing and never dropped:
    a store of `size` jobs built once and reused by later runs (and by another tree's code)."""
    url = make_url(server_url)
    name = f"{prefix}_{size}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first() is None:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield url.set(database=name).render_as_string(hide_password=False)


@contextmanager
def fresh_database(postgres_url: str | None, prefix: str = DEFAULT_DATABASE_PREFIX) -> Iterator[str]:
    """A throwaway PostgreSQL database when a server URL is given, else a SQLite file in a temporary directory."""
    if postgres_url:
        with postgres_database(postgres_url, prefix) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"


def free_port() -> int:
    """A loopback port from the kernel's ephemeral range, free when asked (test_webhook_transport
    relies on the range: this machine's network answers public addresses on other ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, process: subprocess.Popen, log_path: Path, timeout: float = 60, *, gunicorn_log_from: int | None = None
) -> None:
    """Return once a gunicorn worker answers HTTP on `port` (the master binds it before the app is
    built). With `gunicorn_log_from`, also once the master logged past that offset that it listens
    there: a port another process took between `free_port` and the bind answers too, from the
    other server, while ours retries the bind and then exits (a browser test met it refused)."""
    deadline = time.monotonic() + timeout
    listening = f"Listening at: http://127.0.0.1:{port} ".encode()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        if gunicorn_log_from is not None and listening not in log_path.read_bytes()[gunicorn_log_from:]:
            time.sleep(0.1)
            continue
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


def wait_until(check: Callable[[], Any], timeout: float, what: str = "the condition", interval: float = 0.05) -> Any:
    """Call `check` until it returns something true, and return that; TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"not within {timeout} s: {what}")


@contextmanager
def statements_run(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Each (SQL, parameters) the engine sends while the block runs, in order: what a test or benchmark counts."""
    seen: list[tuple[str, Any]] = []

    def record(_connection, _cursor, statement, parameters, _context, _executemany) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@dataclass
class Server:
    """gunicorn with the package's settings serving one database on a loopback port."""

    port: int
    env: dict[str, str]
    log_path: Path
    gunicorn_args: tuple[str, ...] | None = SMALL_SERVER
    checkout: Path = ROOT  # whose code it serves (its working directory; PYTHONPATH in env)
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config",
                    GUNICORN_CONFIG,
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    *(self.gunicorn_args or ()),
                    "--graceful-timeout",
                    "5",
                ],
                cwd=self.checkout,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.port, self.process, self.log_path, gunicorn_log_from=log_from)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def running_server(
    database_url: str, log_path: Path, *, deployed: bool = False, checkout: Path = ROOT, **settings: str
) -> Iterator[Server]:
    """Serve `database_url` (schema already built) until the block ends; `settings` are extra
    environment variables; `deployed` keeps the package's process and thread counts; `checkout`
    is whose code is served (another worktree, for a baseline in the same run)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JOBWARDEN_ENV": "testing",
        "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY,
        "JOBWARDEN_SECRET_KEY": "benchmark-secret",
        "JOBWARDEN_MONITOR": "off",
        "PYTHONPATH": str(checkout),
        **settings,
    }
    gunicorn_args = None if deployed else SMALL_SERVER
    server = Server(port=free_port(), env=env, log_path=log_path, gunicorn_args=gunicorn_args, checkout=checkout)
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGINT)  # gunicorn's quick shutdown


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def marked(marker: str) -> list[int]:
    """Live processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """The CPU a process's own threads have used (utime + stime of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def server_cpu_seconds(master: int) -> float:
    """The CPU a gunicorn master's workers (its children) have used: what serving costs."""
    used = 0.0
    for child in children(master):
        try:
            used += cpu_seconds(child)
        except (FileNotFoundError, ProcessLookupError):
            continue  # a worker that exited since
    return used
