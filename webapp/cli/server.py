"""The `jobwarden` command's Flask CLI group (run, dev, db, worker, monitor, submit, jobs, users).

Loaded by webapp.cli.main for every subcommand but `worker`."""

from __future__ import annotations

import logging

import click
from flask import Flask
from flask.cli import FlaskGroup, run_command, with_appcontext
from flask_migrate import Migrate
from flask_migrate.cli import db as migrate_db_group

from ..config import ConfigError
from ..server.app import create_app
from ..server.current import current_flask_app
from ..store.extensions import db
from ..store.schema import migrations_directory, schema_problem
from ..worker.command import worker_command
from .devserver import dev_command
from .operator_commands import OPERATOR_COMMANDS
from .serve import serve_command
from .users import users_group


class HelpFirstGroup(click.Group):
    """A group whose subcommands answer `--help` (and usage errors) before the group's
    own callback runs, so `jobwarden db upgrade --help` never builds the app (which
    would create the database file and the secret key)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not ctx.resilient_parsing:
            command.make_context(name, list(rest), parent=ctx).close()
        return name, command, rest


class JobwardenGroup(HelpFirstGroup, FlaskGroup):
    """Flask's CLI group, but listing commands never builds the app: every command is
    registered here, none comes from the app, so `jobwarden --help` touches nothing.

    Only Jobwarden's commands and options show: of Flask's defaults `run` stays (the
    development server), `shell` and `routes` do not, nor the group options `--app`
    (the app is always create_app), `--env-file` and `--debug`, nor other packages' plugins."""

    FLASK_OPTIONS_LEFT_OUT = frozenset({"env_file", "app", "debug"})

    def __init__(self, **settings) -> None:
        super().__init__(add_default_commands=False, **settings)
        self.params = [param for param in self.params if param.name not in self.FLASK_OPTIONS_LEFT_OUT]
        self.add_command(run_command)

    def _load_plugin_commands(self) -> None:
        """No commands from other installed packages' entry points (Flask-Limiter's `limiter`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(click.Group.list_commands(self, ctx))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Nor does looking a name up: FlaskGroup builds the app to search its commands for an
        unknown name, so `jobwarden bogus` created the database and the secret key."""
        self._load_plugin_commands()
        return click.Group.get_command(self, ctx, cmd_name)


def create_app_with_migrations() -> Flask:
    """The app, with Flask-Migrate bound for the `db` commands: only the command line loads
    Alembic, not a serving process (webapp.store.schema)."""
    app = create_app()
    Migrate(app, db, directory=str(migrations_directory()))
    return app


@click.group(cls=JobwardenGroup, create_app=create_app_with_migrations, add_version_option=False)
def cli() -> None:
    """Jobwarden: jobs whose true state you can see and recover."""


# Flask-Migrate's `db` group, registered here rather than by the app (see JobwardenGroup).
cli.add_command(
    HelpFirstGroup(
        name="db",
        commands=migrate_db_group.commands,
        params=migrate_db_group.params,
        callback=migrate_db_group.callback,
        help=migrate_db_group.help,
    )
)


def require_current_schema() -> None:
    """A command that writes the store refuses one whose schema is behind this code, in
    one line that says to upgrade, rather than failing on the first missing table."""
    with db.engine.connect() as connection:
        problem = schema_problem(connection)
    if problem is not None:
        raise ConfigError(f"{db.engine.url.render_as_string(hide_password=True)}: {problem}")


@cli.command("monitor")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds between passes (default JOBWARDEN_MONITOR_INTERVAL).",
)
@click.option("--once", is_flag=True, help="Run one pass, print what it changed, and exit.")
@with_appcontext
def monitor_command(interval: float | None, once: bool) -> None:
    """Run the health monitor in the foreground: a pass now, then one every interval."""
    from ..monitor.scheduler import run_foreground

    require_current_schema()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_foreground(current_flask_app(), interval=interval, once=once)


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
    from ..webhooks.delivery import run_forever

    require_current_schema()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_forever(current_flask_app(), echo=click.echo)


# Plain click, no app context: these speak only HTTP to a server.
for _command in (worker_command, *OPERATOR_COMMANDS):
    cli.add_command(_command)
cli.add_command(dev_command)
cli.add_command(serve_command)
cli.add_command(users_group)
