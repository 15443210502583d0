"""`jobwarden submit` and `jobwarden jobs …`: the public API from a terminal.

Like the worker, these never open the database: they speak HTTP to a server
(`--server` or JOBWARDEN_SERVER), as the API token in JOBWARDEN_TOKEN or else with the
admin password from JOBWARDEN_ADMIN_PASSWORD when the deployment sets one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import click

from ..client import ClientError, JobwardenClient, JobwardenError
from ..domain.actions import ACTIONS, Action
from ..worker.command import DEFAULT_SERVER

server_option = click.option(
    "--server",
    envvar="JOBWARDEN_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="Base URL of the Jobwarden server (or JOBWARDEN_SERVER).",
)


def _client(server: str) -> JobwardenClient:
    return JobwardenClient(
        server,
        token=os.environ.get("JOBWARDEN_TOKEN"),
        password=os.environ.get("JOBWARDEN_ADMIN_PASSWORD"),
        retries=2,
    )


def _run(call: Callable[[], Any]) -> Any:
    """Run one API call; a refusal or an unreachable server is a message and exit code 1, not a traceback."""
    try:
        return call()
    except ClientError as error:
        click.echo(f"Error: {error.body.get('message') or error}", err=True)
    except JobwardenError as error:
        click.echo(f"Error: {error}", err=True)
    sys.exit(1)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _json_argument(_ctx, _param, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as error:
        raise click.BadParameter(f"not valid JSON: {error}") from None


@click.command("submit")
@click.argument("job_type")
@click.option("--payload", callback=_json_argument, help="The job's payload as JSON.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None)
@click.option(
    "--timeout", "timeout_s", type=click.IntRange(min=1), default=None, help="Seconds before the worker kills it."
)
@click.option("--hold", is_flag=True, help="Create it pending; release with `jobwarden jobs force-start`.")
@click.option("--queue", default=None, help="The queue whose limits and pause hold it (default: default).")
@click.option("--concurrency-key", default=None, help="Counted by the queue's key_concurrency.")
@click.option("--unique-key", default=None, help="With a live job of this type and key, create nothing.")
@click.option(
    "--unique-for", "unique_for_s", type=click.FloatRange(min=0, min_open=True), default=None,
    help="With --unique-key: also match a job of the key that finished within this many seconds.",
)  # fmt: skip
@click.option("--delay", "delay_s", type=click.FloatRange(min=0), default=None, help="Seconds before it may first run.")
@click.option("--run-after", default=None, help="Not before this time: ISO 8601 with its zone (2026-12-24T18:00Z).")
@server_option
def submit_command(job_type: str, payload: Any, server: str, **options: Any) -> None:
    """Create a job of JOB_TYPE through the API and print it."""
    given = {name: value for name, value in options.items() if value is not None}
    job = _run(lambda: _client(server).create(job_type, payload, **given))
    click.echo(f"job {job['id']} {job['status']}{' (duplicate)' if job.get('duplicate') else ''}", err=True)
    _print_json(job)


@click.group("jobs")
def jobs_group() -> None:
    """List, inspect and recover jobs through the API."""


@jobs_group.command("list")
@click.option("--status", multiple=True, help="Repeat for several.")
@click.option("--type", "job_type")
@click.option("--worker")
@click.option("--queue")
@click.option("--schedule", help="Jobs a schedule created.")
@click.option("-q", "--query", "q", help="Text in the id, type or last error.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", help="next_cursor of the previous page.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@server_option
def list_command(status, job_type, worker, queue, schedule, q, limit, cursor, as_json, server) -> None:
    """One page of jobs, newest first."""
    filters = {"type": job_type, "worker": worker, "queue": queue, "schedule": schedule, "q": q}
    page = _run(lambda: _client(server).list(status=list(status) or None, limit=limit, cursor=cursor, **filters))
    if as_json:
        _print_json(page)
        return
    if not page["jobs"]:
        filtered = status or any(filters.values()) or cursor
        click.echo("No jobs match these filters." if filtered else "No jobs.", err=True)
    else:  # a header, as `queues list` has (scripts read --json)
        click.echo(f"{'ID':>8}  {'STATUS':<10} {'TYPE':<24} {'PROGRESS':>8}  LAST ERROR")
    for job in page["jobs"]:
        progress = "" if job["progress"] is None else f"{job['progress']:.0f}%"
        error = (job["last_error"] or "").splitlines()[0][:60] if job["last_error"] else ""
        click.echo(f"{job['id']:>8}  {job['status']:<10} {job['type']:<24} {progress:>8}  {error}")
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}", err=True)


@jobs_group.command("show")
@click.argument("job_id", type=click.IntRange(min=1))
@server_option
def show_command(job_id: int, server: str) -> None:
    """One job with its attempts and steps, as JSON."""
    _print_json(_run(lambda: _client(server).get(job_id)))


FOLLOW_EVERY_S = 0.5


@jobs_group.command("logs")
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="Default: the newest attempt.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what the running attempt writes until it ends.")
@server_option
def logs_command(job_id: int, attempt: int | None, follow: bool, server: str) -> None:
    """Print a job's log: one attempt's timestamped lines (out, err, log), as stored."""
    client = _client(server)
    offset = 0
    while True:
        piece = _run(partial(client.log, job_id, attempt=attempt, offset=offset))
        if piece["text"]:
            click.echo(piece["text"], nl=False)
        offset = piece["next_offset"]
        if piece["attempt"] is not None:
            attempt = piece["attempt"]  # followed from here on, even once another attempt begins
        if not follow or piece["final"]:
            return
        time.sleep(FOLLOW_EVERY_S)


def _recovery_command(action: Action) -> click.Command:
    @click.command(action.name, help=action.description)
    @click.argument("job_id", type=click.IntRange(min=1))
    @click.option("--reason", required=action.cli_needs_reason, help="Recorded on the job's timeline.")
    @server_option
    def command(job_id: int, reason: str | None, server: str) -> None:
        job = _run(lambda: getattr(_client(server), action.python_name)(job_id, reason))
        click.echo(f"job {job['id']} is now {job['status']}" + (", due now" if action.early else ""))

    return command


for _action in ACTIONS:
    jobs_group.add_command(_recovery_command(_action))
