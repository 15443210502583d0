"""`jobwarden queues list|pause|resume|set`: a queue's limits and pause from a terminal,
through the server's API (operator password from JOBWARDEN_ADMIN_PASSWORD)."""

from __future__ import annotations

from typing import Any

import click

from .operator import _client, _print_json, _run, server_option

CLEAR = "none"


def _limit(_ctx, param, value: str | None) -> Any:
    """A whole number, or `none` to clear the limit; left out: unchanged."""
    if value is None:
        return ...
    if value.lower() == CLEAR:
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"a whole number, or {CLEAR} to clear it") from None


def _rate(_ctx, _param, value: str | None) -> Any:
    """LIMIT/SECONDS (`10/1` = at most 10 starts in any second), or `none`."""
    if value is None:
        return ...
    if value.lower() == CLEAR:
        return None
    try:
        limit, period = value.split("/")
        return {"limit": int(limit), "period_s": float(period)}
    except ValueError:
        raise click.BadParameter(f"LIMIT/SECONDS such as 10/1, or {CLEAR} to clear it") from None


@click.group("queues")
def queues_group() -> None:
    """See and steer queues: limits, pause and resume."""


@queues_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@server_option
def list_command(as_json: bool, server: str) -> None:
    queues = _run(lambda: _client(server).queues())
    if as_json:
        _print_json(queues)
        return
    if not queues:
        click.echo("No queues: no job named one yet.", err=True)
        return
    click.echo(f"{'QUEUE':<24} {'STATE':<7} {'QUEUED':>7} {'RUNNING':>9} {'OLDEST':>8}  LIMITS")
    for queue in queues:
        limits = []
        if queue["concurrency"] is not None:
            limits.append(f"concurrency {queue['concurrency']}")
        if queue["key_concurrency"] is not None:
            limits.append(f"per key {queue['key_concurrency']}")
        if queue["rate_limit"]:
            limits.append(f"rate {queue['rate_limit']['limit']}/{queue['rate_limit']['period_s']:g}s")
        oldest = "-" if queue["oldest_queued_s"] is None else f"{queue['oldest_queued_s']:.0f}s"
        state = "paused" if queue["paused"] else "active"
        running = f"{queue['running']}/{queue['concurrency']}" if queue["concurrency"] is not None else queue["running"]
        queued = f"{queue['queued_cap']}+" if queue["queued"] > queue["queued_cap"] else queue["queued"]
        click.echo(
            f"{queue['name']:<24} {state:<7} {queued!s:>7} {running!s:>9} {oldest:>8}  {', '.join(limits) or '-'}"
        )


@queues_group.command("pause")
@click.argument("name")
@click.option("--reason", help="Recorded with the pause.")
@server_option
def pause_command(name: str, reason: str | None, server: str) -> None:
    """Claims skip the queue; its running jobs go on."""
    _run(lambda: _client(server).pause_queue(name, reason))
    click.echo(f"queue {name}: paused")


@queues_group.command("resume")
@click.argument("name")
@click.option("--reason", help="Recorded with the resume.")
@server_option
def resume_command(name: str, reason: str | None, server: str) -> None:
    _run(lambda: _client(server).resume_queue(name, reason))
    click.echo(f"queue {name}: resumed")


@queues_group.command("set")
@click.argument("name")
@click.option("--concurrency", callback=_limit, help="Live jobs at most (none clears).")
@click.option("--key-concurrency", callback=_limit, help="Live jobs per concurrency_key at most (none clears).")
@click.option("--rate-limit", callback=_rate, help="LIMIT/SECONDS: starts in any window (none clears).")
@click.option("--reason", help="Recorded with the change.")
@server_option
def set_command(name: str, concurrency: Any, key_concurrency: Any, rate_limit: Any, reason: str | None, server: str):
    """Set limits; effective on the next claim."""
    limits = {
        field: value
        for field, value in (
            ("concurrency", concurrency),
            ("key_concurrency", key_concurrency),
            ("rate_limit", rate_limit),
        )
        if value is not ...
    }
    if not limits:
        raise click.UsageError("give --concurrency, --key-concurrency or --rate-limit")
    _print_json(_run(lambda: _client(server).set_queue_limits(name, reason, **limits)))
