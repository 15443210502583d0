"""The `jobwarden` command: a Flask CLI group (run, db, worker, monitor, submit, jobs)."""
from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from . import create_app
from .integrity import StoreUnreadable


@click.group(cls=FlaskGroup, create_app=lambda: create_app(), add_version_option=False)
def cli() -> None:
    """Jobwarden: jobs whose true state you can see and recover."""


def main() -> None:
    try:
        cli.main(prog_name="jobwarden")
    except StoreUnreadable as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
