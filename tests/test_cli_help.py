"""`jobwarden --help` lists Jobwarden's commands and options only: none of Flask's
defaults a Jobwarden user has no use for (`shell`, `routes`, `--app`, `--env-file`,
`--debug`) nor other installed packages' plugins (Flask-Limiter's `limiter`)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.server import PROJECT_ROOT

JOBWARDEN_COMMANDS = [
    "alerts",
    "db",
    "dev",
    "jobs",
    "monitor",
    "queues",
    "run",
    "schedules",
    "serve",
    "submit",
    "users",
    "webhooks",
    "worker",
]


def help_text(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "webapp", *args, "--help"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_lists_jobwardens_commands_and_nothing_else():
    text = help_text()
    options, commands = text.split("Commands:")
    assert [line.split()[0] for line in commands.strip().splitlines()] == JOBWARDEN_COMMANDS
    assert [line.split()[0] for line in options.split("Options:")[1].strip().splitlines()] == ["--help"]


def test_the_development_server_keeps_its_own_options():
    assert "--port" in help_text("run") and "--reload" in help_text("run")
