"""A real worker process (`python -m webapp worker`) for tests that run jobs the way
users do, with its log in a file the test can read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks._support import wait_until
from webapp.store.extensions import db

from tests.conftest import INTERNAL_KEY
from tests.support.server import PROJECT_ROOT

TEST_HANDLERS = ("webapp.worker.demo", "tests.support.worker_handlers")


def launch_worker(
    server_url: str,
    log_path: Path,
    *options: str,
    handlers: tuple[str, ...] = TEST_HANDLERS,
    prefix: tuple[str, ...] = (),
) -> subprocess.Popen:
    """The one way the tests start a real worker (`python -m webapp worker`): with the test
    key, `handlers` and `options`, its output in `log_path`, in its own process group so a
    test can signal the worker and everything it started. `prefix` runs it under another
    command (a namespace, `setsid`…)."""
    argv = [*prefix, sys.executable, "-m", "webapp", "worker", "--server", server_url]
    for module in handlers:
        argv += ["--handlers", module]
    with log_path.open("w") as log:
        return subprocess.Popen(
            [*argv, *options],
            cwd=PROJECT_ROOT,
            env={**os.environ, "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY, "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_worker(server_url: str, log_path: Path, worker_id: str, *options: str) -> subprocess.Popen:
    """A worker with the demo and the test handlers."""
    return launch_worker(server_url, log_path, "--worker-id", worker_id, *options)


def stop_worker(worker: subprocess.Popen) -> None:
    """Two signals (stop at once), then SIGKILL to the group if it still lingers."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


@contextmanager
def running_worker(server_url: str, log_path: Path, worker_id: str, *options: str) -> Iterator[subprocess.Popen]:
    worker = start_worker(server_url, log_path, worker_id, *options)
    try:
        yield worker
    finally:
        stop_worker(worker)


def wait_for(
    predicate: Callable[[], object], timeout: float = 30, what: str = "condition", *, logs: tuple[Path, ...] = ()
) -> object:
    """Poll `predicate`, seeing the server's and the workers' commits, until it is true (the
    benchmarks' wait_until); on timeout the error ends with the last lines of `logs`."""

    def fresh() -> object:
        db.session.rollback()
        return predicate()

    try:
        return wait_until(fresh, timeout, what)
    except TimeoutError as error:
        tails = [f"--- {path.name}:\n" + "\n".join(path.read_text().splitlines()[-40:]) for path in logs]
        raise TimeoutError("\n".join([str(error), *tails])) from None
