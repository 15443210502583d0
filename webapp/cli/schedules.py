"""`jobwarden schedules list|add|pause|resume|trigger|rm`: the schedule API from a terminal.

Like `jobwarden jobs …` these speak HTTP to a server and never open the database.
"""

from __future__ import annotations

from typing import Any

import click

from ..domain.schedule_policies import MISFIRE_POLICIES, OVERLAP_POLICIES
from .operator import _client, _json_argument, _print_json, _run, server_option


@click.group("schedules")
def schedules_group() -> None:
    """List, add, pause, resume, trigger and remove schedules through the API."""


@schedules_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@server_option
def list_command(as_json: bool, server: str) -> None:
    """Every schedule: name, when, next fire time, last run."""
    schedules = _run(lambda: _client(server).schedules())
    if as_json:
        _print_json(schedules)
        return
    if not schedules:
        click.echo("No schedules.", err=True)
        return
    click.echo(f"{'SCHEDULE':<24} {'STATE':<8} {'WHEN':<40} {'NEXT FIRE':<27}  LAST RUN")
    for schedule in schedules:
        state = "paused" if schedule["paused"] else ("missing" if schedule["missing_from_code"] else "active")
        last = schedule["last_job"]
        ran = f"job {last['id']} {last['status']}" if last else "no runs"
        next_fire = schedule["next_fire_at"] or "-"
        click.echo(f"{schedule['name']:<24} {state:<8} {schedule['description']:<40} {next_fire:<27}  {ran}")


@schedules_group.command("add")
@click.argument("name")
@click.option("--type", "job_type", required=True, help="The job type each fire creates.")
@click.option("--cron", help='5 fields, e.g. "30 2 * * *".')
@click.option("--every", "every_s", type=int, help="Seconds between fires (instead of --cron).")
@click.option("--timezone", help="IANA zone of --cron (default UTC).")
@click.option("--payload", callback=_json_argument, help="The jobs' payload as JSON.")
@click.option("--priority", type=int)
@click.option("--max-attempts", type=int)
@click.option("--queue")
@click.option("--misfire", type=click.Choice(MISFIRE_POLICIES))
@click.option("--overlap", type=click.Choice(OVERLAP_POLICIES))
@server_option
def add_command(name: str, job_type: str, server: str, **settings: Any) -> None:
    """Add the schedule NAME and print it."""
    given = {key: value for key, value in settings.items() if value is not None}
    schedule = _run(lambda: _client(server).add_schedule(name, type=job_type, **given))
    click.echo(f"schedule {schedule['name']}: {schedule['description']}, next {schedule['next_fire_at']}", err=True)
    _print_json(schedule)


def _action_command(action: str, help: str) -> click.Command:
    @click.command(action, help=help)
    @click.argument("name")
    @server_option
    def command(name: str, server: str) -> None:
        answer = _run(lambda: _client(server).schedule_action(name, action))
        if action == "trigger":
            click.echo(f"job {answer['id']} {answer['status']} for schedule {name}")
        else:
            click.echo(f"schedule {name} {'paused' if answer['paused'] else 'active'}, next {answer['next_fire_at']}")

    return command


schedules_group.add_command(_action_command("pause", "Stop the schedule NAME firing until resumed."))
schedules_group.add_command(_action_command("resume", "Fire NAME again, from its next time after now."))
schedules_group.add_command(_action_command("trigger", "Run NAME once now; prints the job."))


@schedules_group.command("rm")
@click.argument("name")
@server_option
def remove_command(name: str, server: str) -> None:
    """Remove the schedule NAME (its jobs stay)."""
    _run(lambda: _client(server).remove_schedule(name))
    click.echo(f"schedule {name} removed")
