"""A real Jobwarden server (gunicorn) on a free loopback port, for tests that talk HTTP
the way workers, scripts and browsers do: the benchmarks' server (they run without the
test suite, so the tests use theirs), with the tests' internal key and secret."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import _support
from benchmarks._support import ROOT as PROJECT_ROOT
from benchmarks._support import Server, free_port, wait_for_port

__all__ = ["PROJECT_ROOT", "Server", "free_port", "running_server", "wait_for_port"]


@contextmanager
def running_server(database_url: str, log_path: Path, *, deployed: bool = False, **settings: str) -> Iterator[Server]:
    """Serve `database_url` (schema already built) until the block ends; `settings` are extra
    environment variables (e.g. JOBWARDEN_MONITOR="on"); `deployed` keeps the package's
    process and thread counts."""
    from tests.conftest import INTERNAL_KEY

    settings = {"JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY, "JOBWARDEN_SECRET_KEY": "test-secret", **settings}
    with _support.running_server(database_url, log_path, deployed=deployed, **settings) as server:
        yield server
