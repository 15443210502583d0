"""`jobwarden serve`: the production server — gunicorn with the settings this package
carries (webapp/server/gunicorn_config.py), so an installed wheel serves the same way as the
image and the checkout, with no configuration file to find on disk.

It replaces its own process with gunicorn's (exec), so signals from a process manager
or `docker stop` reach gunicorn's master directly and it drains as gunicorn does.
"""

from __future__ import annotations

import os
import sys

import click

from ..config import from_environment
from ..store.integrity import check_sqlite_file, check_sqlite_owner, sqlite_path

GUNICORN_CONFIG = "python:webapp.server.gunicorn_config"


def gunicorn_argv(host: str, port: int, workers: int | None, threads: int | None) -> list[str]:
    """The gunicorn command line `jobwarden serve` runs."""
    argv = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG, "--bind", f"{host}:{port}"]
    if workers is not None:
        argv += ["--workers", str(workers)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    return argv


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="gunicorn processes (default GUNICORN_WORKERS, else 2).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads per process (default GUNICORN_THREADS, else 256: one per waiting worker claim).",
)
def serve_command(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Serve the dashboard and API in production (gunicorn). Run `jobwarden db upgrade` first."""
    _refuse_an_unusable_store()
    argv = gunicorn_argv(host, port, workers, threads)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def _refuse_an_unusable_store() -> None:
    """A corrupt or foreign SQLite file stops `serve` with the one line every command prints,
    before gunicorn starts (its processes would each refuse it, in a log of their own)."""
    database_file = sqlite_path(from_environment()["SQLALCHEMY_DATABASE_URI"])
    if database_file is not None:
        check_sqlite_file(database_file)
        check_sqlite_owner(database_file)
