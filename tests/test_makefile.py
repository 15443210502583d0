"""`make run` installs only when what it installs from changed, and takes PORT (issue 15)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.server import PROJECT_ROOT

INSTALLED_FROM = ["Makefile", "pyproject.toml", "setup.py", "package.json", "package-lock.json"]


def dry_run(directory: Path, *args: str) -> str:
    result = subprocess.run(["make", "-n", *args], cwd=directory, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def touch_later(path: Path) -> None:
    later = time.time() + 5
    os.utime(path, (later, later))


@pytest.fixture
def installed_checkout(tmp_path) -> Path:
    """The files make installs from, with the stamps of a finished install newer than them."""
    if shutil.which("make") is None:
        pytest.fail("make is a prerequisite (README)")
    for name in INSTALLED_FROM:
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    for stamp in [".venv/bin/python", ".venv/.installed", ".venv/.installed-test", "node_modules/.installed"]:
        (tmp_path / stamp).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / stamp).touch()
        touch_later(tmp_path / stamp)
    return tmp_path


def test_make_run_does_not_reinstall_when_nothing_changed(installed_checkout):
    commands = dry_run(installed_checkout, "run")

    assert "pip install" not in commands and "npm ci" not in commands
    assert ".venv/bin/jobwarden dev --host 127.0.0.1 --port 5000" in commands


def test_make_run_reinstalls_what_changed_only(installed_checkout):
    os.utime(installed_checkout / "package-lock.json", (time.time() + 60, time.time() + 60))

    commands = dry_run(installed_checkout, "run")

    assert "npm ci" in commands and "pip install" not in commands


def test_make_run_takes_the_port(installed_checkout):
    assert ".venv/bin/jobwarden dev --host 127.0.0.1 --port 8765" in dry_run(installed_checkout, "run", "PORT=8765")
