"""The `jobwarden` command's Flask CLI group (run, dev, db, worker, monitor, submit, jobs).

Loaded by webapp.cli for every subcommand but `worker`."""
from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from .app import create_app
from .devserver import dev_command
from .operator_cli import jobs_group, submit_command
from .worker.command import worker_command


@click.group(cls=FlaskGroup, create_app=lambda: create_app(), add_version_option=False)
def cli() -> None:
    """Jobwarden: jobs whose true state you can see and recover."""


@cli.command("monitor")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between passes (default JOBWARDEN_MONITOR_INTERVAL).")
@click.option("--once", is_flag=True, help="Run one pass, print what it changed, and exit.")
@with_appcontext
def monitor_command(interval: float | None, once: bool) -> None:
    """Run the health monitor in the foreground: a pass now, then one every interval."""
    from .monitor import run_foreground

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_foreground(current_app._get_current_object(), interval=interval, once=once)


# Plain click, no app context: these speak only HTTP to a server.
cli.add_command(worker_command)
cli.add_command(submit_command)
cli.add_command(jobs_group)
cli.add_command(dev_command)

