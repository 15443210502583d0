"""`jobwarden alerts list` and `jobwarden alerts rules list|add|disable|enable|rm`: the alert API
from a terminal.

Like `jobwarden jobs …` these speak HTTP to a server and never open the database.
"""

from __future__ import annotations

import click

from ..domain.alerts import ANY_SUBJECT, KIND_NAMES
from .operator import _client, _print_json, _run, server_option


@click.group("alerts")
def alerts_group() -> None:
    """Firing and recent alerts, and the rules that raise them."""


@alerts_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@server_option
def list_alerts(as_json: bool, server: str) -> None:
    """Firing alerts (since when), then the recently resolved."""
    alerts = _run(lambda: _client(server).alerts())
    if as_json:
        _print_json(alerts)
        return
    if not alerts:
        click.echo("No alerts.", err=True)
        return
    for alert in alerts:
        when = f"since {alert['since']}" if alert["state"] == "firing" else f"resolved {alert['resolved_at']}"
        click.echo(f"{alert['id']:>6} {alert['state']:<9} {when:<40} {alert['message']}")


@alerts_group.group("rules")
def rules_group() -> None:
    """List, add, disable, enable and remove alert rules."""


@rules_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@server_option
def list_rules(as_json: bool, server: str) -> None:
    """Every rule, in words, with how many of its alerts fire."""
    rules = _run(lambda: _client(server).alert_rules())
    if as_json:
        _print_json(rules)
        return
    if not rules:
        click.echo("No alert rules.", err=True)
        return
    for rule in rules:
        state = "disabled" if not rule["enabled"] else f"{rule['firing']} firing" if rule["firing"] else "quiet"
        click.echo(f"{rule['id']:>6} {state:<10} {rule['description']}")


@rules_group.command("add")
@click.argument("kind", type=click.Choice(KIND_NAMES))
@click.option("--subject", default=ANY_SUBJECT, show_default=True, help="A type, queue or schedule name, or *.")
@click.option("--threshold", type=float, required=True, help="Fires at this value or above (a rate: 0.5 = 50 %).")
@click.option("--window", "window_s", type=int, help="Seconds counted (failure_rate, worker_deaths).")
@click.option("--min-jobs", type=int, help="failure_rate: fewer finished jobs never fire.")
@server_option
def add_rule(
    kind: str, subject: str, threshold: float, window_s: int | None, min_jobs: int | None, server: str
) -> None:
    """Add a rule of KIND and print it."""
    given = {"subject": subject, "window_s": window_s, "min_jobs": min_jobs}
    rule = _run(
        lambda: _client(server).add_alert_rule(kind, threshold, **{k: v for k, v in given.items() if v is not None})
    )
    click.echo(f"rule {rule['id']}: {rule['description']}", err=True)
    _print_json(rule)


@rules_group.command("disable")
@click.argument("rule_id", type=int)
@server_option
def disable_rule(rule_id: int, server: str) -> None:
    """Stop evaluating rule RULE_ID (kept, with its history); its firing alerts resolve."""
    _run(lambda: _client(server).set_alert_rule_enabled(rule_id, False))
    click.echo(f"rule {rule_id} disabled", err=True)


@rules_group.command("enable")
@click.argument("rule_id", type=int)
@server_option
def enable_rule(rule_id: int, server: str) -> None:
    """Evaluate rule RULE_ID again from the next monitor pass."""
    _run(lambda: _client(server).set_alert_rule_enabled(rule_id, True))
    click.echo(f"rule {rule_id} enabled", err=True)


@rules_group.command("rm")
@click.argument("rule_id", type=int)
@server_option
def remove_rule(rule_id: int, server: str) -> None:
    """Remove rule RULE_ID and its alerts."""
    _run(lambda: _client(server).remove_alert_rule(rule_id))
    click.echo(f"rule {rule_id} removed", err=True)
