"""The commands that only speak HTTP to a running server (submit, jobs, schedules, queues,
alerts), as one group of their own. `jobwarden` (webapp.cli.main) runs them from here
before importing Flask, as it runs `worker`: loading the server to send one request made
`jobwarden jobs list` take over a second, most of it imports it never used."""

from __future__ import annotations

import click

from .alerts import alerts_group
from .operator import jobs_group, submit_command
from .queues import queues_group
from .schedules import schedules_group

OPERATOR_COMMANDS: tuple[click.Command, ...] = (submit_command, jobs_group, schedules_group, queues_group, alerts_group)

operator_cli = click.Group("jobwarden", commands=OPERATOR_COMMANDS)
