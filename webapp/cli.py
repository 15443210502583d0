"""The `jobwarden` command: a Flask CLI group (run, dev, db, worker, monitor, submit, jobs)."""
from __future__ import annotations

import logging
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from . import create_app
from .config import ConfigError
from .integrity import StoreUnreadable
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


@cli.group("webhooks")
def webhooks_group() -> None:
    """Webhook notifications."""


@webhooks_group.command("deliver")
@with_appcontext
def webhooks_deliver_command() -> None:
    """Deliver queued webhook notifications in the foreground until SIGTERM/SIGINT.

    `jobwarden monitor` and the web app's in-process monitor deliver too; on PostgreSQL
    only one round runs at a time across all of them.
    """
    from .webhooks.delivery import run_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_forever(current_app._get_current_object(), echo=click.echo)


# Plain click, no app context: these speak only HTTP to a server.
cli.add_command(worker_command)
cli.add_command(submit_command)
cli.add_command(jobs_group)
cli.add_command(dev_command)


def main() -> None:
    try:
        cli.main(prog_name="jobwarden")
    except (StoreUnreadable, ConfigError) as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
