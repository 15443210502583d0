"""`jobwarden users add|list|disable|enable|reset-password|set-role`: people and their
roles, on the database directly (run it where the server's DATABASE_URL is set).

A new password is printed once (or read from stdin with --password-stdin, so it never
shows in the shell's history or the process list). Each change is in the audit trail
as made by `cli` on this machine's user.
"""

from __future__ import annotations

import getpass
import sys

import click
from flask.cli import with_appcontext

from ..domain.roles import ROLE_NAMES, Role
from ..jobs import audit, users
from ..jobs.query_params import BadQuery

ROLE = click.Choice(ROLE_NAMES)


def _audited(action: str, name: str, **data: str) -> None:
    audit.record(actor=f"cli:{getpass.getuser()}", via="cli", action=action, target=f"user {name}", data=data or None)


def _password(from_stdin: bool) -> tuple[str, bool]:
    """(password, generated): one line of stdin, or a fresh one-time password."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return users.one_time_password(), True


def _run(change) -> None:
    try:
        change()
    except BadQuery as error:
        raise click.ClickException(f"{error.field}: {error}") from None


@click.group("users")
def users_group() -> None:
    """People who sign in, and their roles (viewer, operator, admin)."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=ROLE, required=True, help="viewer (reads), operator (job actions), admin (everything).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of printing a new one.")
@with_appcontext
def add_command(name: str, role: str, password_stdin: bool) -> None:
    """Add a local user; prints a one-time password unless --password-stdin."""
    password, generated = _password(password_stdin)
    _run(lambda: users.add_user(name, Role.named(role), password))
    _audited("users add", name, role=role)
    if generated:
        click.echo(f"{name} ({role}) added. One-time password, shown only now: {password}")
    else:
        click.echo(f"{name} ({role}) added.")


@users_group.command("list")
@with_appcontext
def list_command() -> None:
    """Every user: name, role, how they sign in, whether disabled."""
    everyone = users.all_users()
    if not everyone:
        click.echo("No users: add one with `jobwarden users add NAME --role admin`.", err=True)
        return
    for user in everyone:
        shown = users.user_json(user)
        state = "disabled" if shown["disabled"] else "active"
        click.echo(
            f"{shown['name']}\t{shown['role']}\t{shown['sign_in']}\t{state}\tlast login {shown['last_login_at'] or '-'}"
        )


@users_group.command("disable")
@click.argument("name")
@with_appcontext
def disable_command(name: str) -> None:
    """No more sign-ins; the user's sessions and tokens stop acting at once."""
    _run(lambda: users.disable_user(name))
    _audited("users disable", name)
    click.echo(f"{name} disabled; their sessions and tokens no longer act.")


@users_group.command("enable")
@click.argument("name")
@with_appcontext
def enable_command(name: str) -> None:
    _run(lambda: users.enable_user(name))
    _audited("users enable", name)
    click.echo(f"{name} enabled.")


@users_group.command("reset-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of printing a new one.")
@with_appcontext
def reset_password_command(name: str, password_stdin: bool) -> None:
    """A new password (printed once unless --password-stdin); the user's sessions end."""
    password, generated = _password(password_stdin)
    _run(lambda: users.reset_password(name, password))
    _audited("users reset-password", name)
    click.echo(f"New password of {name}, shown only now: {password}" if generated else f"Password of {name} changed.")


@users_group.command("set-role")
@click.argument("name")
@click.argument("role", type=ROLE)
@with_appcontext
def set_role_command(name: str, role: str) -> None:
    _run(lambda: users.set_role(name, Role.named(role)))
    _audited("users set-role", name, role=role)
    click.echo(f"{name} is now {role}.")
