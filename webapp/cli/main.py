"""The `jobwarden` command. `jobwarden worker` and the commands that only speak HTTP to a
server (webapp.cli.operator_commands) are dispatched before Flask is imported, so they
load only what they run; every other subcommand goes through the Flask CLI group in
webapp.cli.server."""

from __future__ import annotations

import sys

import click

from ..config import ConfigError


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        from ..worker.command import worker_command

        worker_command.main(args=sys.argv[2:], prog_name="jobwarden worker")
        return
    from .operator_commands import operator_cli

    if sys.argv[1:2] and sys.argv[1] in operator_cli.commands:
        operator_cli.main(prog_name="jobwarden")
        return
    from ..store.integrity import StoreUnreadable
    from .server import cli

    try:
        cli.main(prog_name="jobwarden")
    except (StoreUnreadable, ConfigError) as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
