"""`jobwarden worker`: a worker process. It never loads the web app or opens the
database: it speaks only the internal API, so it can run on any machine."""

from __future__ import annotations

import logging
import os
import sys

import click

DEFAULT_SERVER = "http://127.0.0.1:5000"


def _types(_ctx, _param, value: str | None) -> list[str] | None:
    if value is None:
        return None
    types = [t.strip() for t in value.split(",") if t.strip()]
    if not types:
        raise click.BadParameter("name at least one job type, or * for any")
    return types


def _queues(_ctx, _param, value: str | None) -> list[str] | None:
    if value is None:
        return None
    queues = [q.strip() for q in value.split(",") if q.strip()]
    if not queues:
        raise click.BadParameter("name at least one queue, or leave --queues out for all")
    return queues


@click.command("worker")
@click.option(
    "--server",
    envvar="JOBWARDEN_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="Base URL of the Jobwarden server (or JOBWARDEN_SERVER).",
)
@click.option(
    "--handlers",
    "handler_modules",
    multiple=True,
    default=["webapp.worker.demo"],
    show_default=True,
    help="Module with a `registry = Registry()` of handlers; repeat for several.",
)
@click.option(
    "--types",
    callback=_types,
    default=None,
    help="Comma-separated job types to claim (default: the handlers' types; * for any).",
)
@click.option(
    "--queues",
    callback=_queues,
    default=None,
    help="Comma-separated queues to claim from (default: all).",
)
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=1, show_default=True, help="Jobs run at the same time."
)
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between heartbeats (and so the cancel latency).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds before claiming again after the server refused a claim or the claim failed. "
    "(With nothing to do a claim waits at the server, which answers as soon as a job is ready.)",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="On shutdown, seconds running jobs get to finish before they are stopped.",
)
@click.option(
    "--kill-grace",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds between SIGTERM and SIGKILL to a stopped command (default: --grace).",
)
@click.option(
    "--retry-max",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Longest wait between retries while the server is unreachable.",
)
@click.option(
    "--record-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds a durable step waits for its result to be stored before it fails (phase record).",
)
@click.option("--worker-id", default=None, help="Name shown on the dashboard (default: host-pid-random).")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
def worker_command(
    server: str,
    handler_modules: tuple[str, ...],
    types: list[str] | None,
    queues: list[str] | None,
    concurrency: int,
    heartbeat_interval: float,
    poll_interval: float,
    grace: float,
    kill_grace: float | None,
    retry_max: float,
    record_timeout: float,
    worker_id: str | None,
    log_level: str,
) -> None:
    """Run a worker: claim jobs from the server and run them with the registered handlers.

    Needs JOBWARDEN_INTERNAL_API_KEY in the environment.
    """
    from .handlers import RegistryError, load
    from .runner import WorkerRunner, WorkerSettings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = os.environ.get("JOBWARDEN_INTERNAL_API_KEY")
    if not key:
        raise click.UsageError("JOBWARDEN_INTERNAL_API_KEY must be set: the worker authenticates with it")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # `--handlers my_module` from the current directory
    try:
        registry = load(handler_modules)
    except RegistryError as error:
        raise click.UsageError(str(error)) from None
    if not registry.types and types is None:
        raise click.UsageError("no handlers registered: pass --handlers MODULE")
    settings = WorkerSettings(
        server=server,
        internal_key=key,
        concurrency=concurrency,
        types=types,
        queues=queues,
        heartbeat_interval=heartbeat_interval,
        poll_interval=poll_interval,
        grace=grace,
        kill_grace=kill_grace,
        retry_max=retry_max,
        worker_id=worker_id,
        record_timeout=record_timeout,
    )
    worker = WorkerRunner(settings, registry)
    worker.install_signal_handlers()
    sys.exit(worker.run())
