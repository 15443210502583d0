"""The Dockerfile and compose.yaml only run `jobwarden` command lines the real CLI
accepts, and gunicorn with the project's settings logs no control-socket error
(issue 15, item 2). No Docker engine runs here: the commands are checked outside it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import urllib.request
import warnings
from pathlib import Path

import click
import pytest
import yaml

from webapp.cli.server import cli

from tests.support.server import PROJECT_ROOT, free_port, wait_for_port

JOBWARDEN = Path(PROJECT_ROOT, ".venv", "bin", "jobwarden")


def dockerfile_instructions(keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction, continuation lines joined."""
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.split(None, 1)[:1] == [keyword]]


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a `sh -c` script, split at &&, || and ;."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in {"&&", "||", ";", "|"}:
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [*commands, current]


def exec_form_or_shell(argument: str | list[str]) -> list[list[str]]:
    if isinstance(argument, str):
        argument = json.loads(argument) if argument.lstrip().startswith("[") else ["sh", "-c", argument]
    if argument[:2] == ["sh", "-c"]:
        return shell_commands(argument[2])
    return [argument]


def dockerfile_commands() -> list[list[str]]:
    return [
        command
        for keyword in ("RUN", "CMD")
        for argument in dockerfile_instructions(keyword)
        for command in exec_form_or_shell(argument)
    ]


def compose_commands() -> list[list[str]]:
    services = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())["services"]
    return [
        command
        for service in services.values()
        if "command" in service
        for command in exec_form_or_shell(service["command"])
    ]


def jobwarden_lines() -> list[list[str]]:
    """Every `jobwarden` command line, also one the shell `exec`s."""
    commands = [
        command[1:] if command[:1] == ["exec"] else command for command in dockerfile_commands() + compose_commands()
    ]
    return [command for command in commands if command[:1] == ["jobwarden"]]


def parse_with_the_cli(argv: list[str]) -> click.Context:
    """Parse (and convert) every argument down to the leaf command without running it."""
    context = cli.make_context("jobwarden", list(argv[1:]))
    while isinstance(context.command, click.Group):
        with warnings.catch_warnings():  # Click 8.2+ deprecates protected_args; Click 9 puts them in args
            warnings.simplefilter("ignore", DeprecationWarning)
            remaining = [*context.protected_args, *context.args]
        name, command, rest = context.command.resolve_command(context, remaining)
        context = command.make_context(name, rest, parent=context)
    return context


def accepted_by_the_real_cli(argv: list[str]) -> subprocess.CompletedProcess:
    """The installed `jobwarden` parses the line: options and the command path exist."""
    env = {**os.environ, "DATABASE_URL": "sqlite:////nonexistent-dir/never-created.db"}
    return subprocess.run([str(JOBWARDEN), *argv[1:], "--help"], capture_output=True, text=True, timeout=60, env=env)


def test_the_deploy_files_run_the_commands_expected():
    lines = [" ".join(argv[:2]) for argv in jobwarden_lines()]
    assert sorted(lines) == ["jobwarden db", "jobwarden monitor", "jobwarden serve", "jobwarden worker"]


@pytest.mark.parametrize("argv", jobwarden_lines(), ids=lambda argv: " ".join(argv))
def test_every_jobwarden_command_line_of_the_deploy_files_is_accepted_by_the_cli(argv):
    result = accepted_by_the_real_cli(argv)
    assert result.returncode == 0, result.stderr
    words = [argv[0]]
    for word in argv[1:]:
        if word.startswith("-"):
            break
        words.append(word)
    assert parse_with_the_cli(argv).command_path == " ".join(words)


@pytest.mark.parametrize("argv", [["jobwarden", "monitor", "--forever"], ["jobwarden", "db", "upgrad"]])
def test_the_check_refuses_a_command_line_the_cli_does_not_know(argv):
    assert accepted_by_the_real_cli(argv).returncode != 0
    with pytest.raises(click.UsageError):
        parse_with_the_cli(argv)


def test_a_bad_option_value_is_caught_by_parsing():
    with pytest.raises(click.BadParameter):
        parse_with_the_cli(["jobwarden", "worker", "--concurrency", "zero"])


def test_the_image_serves_with_jobwarden_serve_on_port_8000_and_copies_no_settings_file():
    (cmd,) = dockerfile_instructions("CMD")
    (serve,) = [command for command in exec_form_or_shell(cmd) if command[:3] == ["exec", "jobwarden", "serve"]]
    params = parse_with_the_cli(serve[1:]).params
    assert (params["host"], params["port"]) == ("0.0.0.0", 8000)
    assert not any("gunicorn" in copy for copy in dockerfile_instructions("COPY"))


def test_jobwarden_serve_answers_healthz_and_logs_no_control_socket_error(tmp_path):
    """`jobwarden serve` runs gunicorn with the package's settings, from a directory holding
    no settings file. The image's user has no writable home; gunicorn's control socket would live there."""
    (tmp_path / "home-is-a-file").touch()
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home-is-a-file" / "home"),
        "XDG_RUNTIME_DIR": "",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "JOBWARDEN_DATA_DIR": str(tmp_path / "data"),
        "JOBWARDEN_INTERNAL_API_KEY": "k" * 32,
        "PYTHONPATH": str(PROJECT_ROOT),
        "GUNICORN_WORKERS": "1",
    }
    subprocess.run(
        [str(JOBWARDEN), "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=60
    )
    env.pop("GUNICORN_CONTROL_SOCKET", None)
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(JOBWARDEN), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, server, log_path, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert response.status == 200
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    log = log_path.read_text()
    assert "Booting worker" in log
    assert "Control server error" not in log, log
