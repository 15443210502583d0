"""`jobwarden dev`, the README's first command, as a user runs it: a real
process serving the dashboard with sample jobs and a local worker running them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from benchmarks import _support
from webapp.cli.devserver import SAMPLE_JOBS
from webapp.domain.alerts import DEFAULT_RULES, KIND_NAMES

from tests.support.server import PROJECT_ROOT, free_port

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow
ALL_SAMPLES_AT_ONCE = len(SAMPLE_JOBS)


def wait_until(predicate, timeout: float, what: str):
    """The benchmarks' wait_until, a refused connection (the server not up yet) or an answer
    slower than the request's own timeout counting as not yet: the dev server's first page
    (cold imports and templates, beside its worker starting) took over 2 s on a loaded 2-core
    machine, and only `timeout` says how long the test waits."""

    def answered():
        try:
            return predicate()
        except (requests.ConnectionError, requests.Timeout):
            return None

    return _support.wait_until(answered, timeout, what, interval=0.2)


def test_dev_serves_sample_jobs_runs_them_and_hands_back_on_ctrl_c(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}", "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("JOBWARDEN_INTERNAL_API_KEY", None)
    env["JOBWARDEN_MONITOR_INTERVAL"] = "2"  # the sample alert fires on the pass after demo.crash failed
    subprocess.run(
        [sys.executable, "-m", "webapp", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "dev.log").open("w")
    # Slots for every sample at once: with the default two, demo.crash waited ~40 s behind the
    # long samples before the alert could fire.
    process = subprocess.Popen(
        [sys.executable, "-m", "webapp", "dev", "--port", str(port), "--concurrency", str(ALL_SAMPLES_AT_ONCE)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        page = wait_until(lambda: requests.get(f"{url}/jobs", timeout=2), 30, "the dashboard")
        assert page.status_code == 200 and 'data-job-id="1"' in page.text
        wait_until(
            lambda: any(
                job["status"] == "completed" for job in requests.get(f"{url}/api/jobs", timeout=2).json()["jobs"]
            ),
            60,
            "the local worker to complete a sample job",
        )

        def both_schedules() -> list:
            listed = requests.get(f"{url}/api/schedules", timeout=2).json()["schedules"]
            return listed if len(listed) == 2 else []

        schedules = wait_until(both_schedules, 30, "the sample schedules, synced by the local worker")
        assert {(s["name"], s["source"]) for s in schedules} == {("demo-tick", "code"), ("demo-nightly-report", "code")}

        # The fresh install's default rules and the sample rule, which fires once demo.crash failed.
        rules = requests.get(f"{url}/api/alert-rules", timeout=2).json()["rules"]
        assert {r["kind"] for r in rules} == set(KIND_NAMES) and len(rules) == len(DEFAULT_RULES) + 1

        def sample_alert() -> list:
            alerts = requests.get(f"{url}/api/alerts", timeout=2).json()["alerts"]
            return [a for a in alerts if a["subject"] == "demo.crash" and a["state"] == "firing"]

        wait_until(sample_alert, 60, "the sample alert to fire")
        assert 'data-testid="firing-alerts"' in requests.get(f"{url}/health", timeout=5).text
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            kill_local_workers(tmp_path / "dev.log")
    env["JOBWARDEN_ENV"] = "development"
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json\nfrom webapp import create_app, jobs\n"
            "app = create_app({'JOBWARDEN_MONITOR': False})\n"
            "with app.app_context(): print(json.dumps([j.status for j in jobs.list_jobs(jobs.JobFilter())[0]]))",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    statuses = json.loads(listed.stdout)
    assert "running" not in statuses and "claimed" not in statuses, statuses


def registered_pids(url: str) -> set[int]:
    return {worker["pid"] for worker in requests.get(f"{url}/api/health", timeout=2).json()["workers"]}


def test_dev_restarts_its_killed_worker_saying_so_and_prints_a_second_workers_command(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}", "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("JOBWARDEN_INTERNAL_API_KEY", None)
    subprocess.run(
        [sys.executable, "-m", "webapp", "db", "upgrade"], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "dev.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "webapp", "dev", "--port", str(port), "--no-samples"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    second = None
    try:
        first_pid = int(
            wait_until(lambda: re.search(r"local worker pid (\d+)", log_path.read_text()), 30, "the banner").group(1)
        )
        wait_until(lambda: first_pid in registered_pids(url), 30, "the local worker to register")

        os.kill(first_pid, signal.SIGKILL)
        # The two lines in order, though the server's own lines (the dropped claim) may come between them.
        said = wait_until(
            lambda: re.search(
                rf"local worker pid {first_pid} was killed by SIGKILL .*\n(?:.*\n)*?.*local worker restarted, pid (\d+)",
                log_path.read_text(),
            ),
            30,
            "the restart message",
        )
        new_pid = int(said.group(1))
        wait_until(lambda: new_pid in registered_pids(url), 30, "the restarted worker to register")
        assert process.poll() is None and requests.get(f"{url}/jobs", timeout=2).status_code == 200

        # The printed line, pasted as is into a shell that has no key of its own.
        (command,) = re.findall(r"^  (JOBWARDEN_INTERNAL_API_KEY=.*)$", log_path.read_text(), re.MULTILINE)
        shell_env = {key: value for key, value in os.environ.items() if not key.startswith("JOBWARDEN_")}
        second = subprocess.Popen(
            ["sh", "-c", command],
            cwd=tmp_path,
            env=shell_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(lambda: registered_pids(url) - {first_pid, new_pid}, 30, "the second worker to register")
    finally:
        if second is not None:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(timeout=30)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def kill_local_workers(log_path: Path) -> None:
    """The dev server's local workers run in sessions of their own (webapp.cli.dev_worker), so
    killing the server leaves them; a failed test must not leave them running for the rest."""
    for pid in re.findall(r"local worker (?:restarted, )?pid (\d+)", log_path.read_text()):
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_readme_counts_the_sample_jobs_make_run_creates():
    """The README's `make run` line and its first job's id follow the sample jobs (9 and 10 drifted to 14 and 15)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert f", {len(SAMPLE_JOBS)} sample jobs created," in readme
    assert f".venv/bin/jobwarden jobs show {len(SAMPLE_JOBS) + 1} " in readme
