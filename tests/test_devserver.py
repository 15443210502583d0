"""`jobwarden dev`, the README's first command, as a user runs it: a real
process serving the dashboard with sample jobs and a local worker running them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import requests

from tests.support.server import PROJECT_ROOT, free_port


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_dev_serves_sample_jobs_runs_them_and_hands_back_on_ctrl_c(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}", "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("JOBWARDEN_INTERNAL_API_KEY", None)
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
    process = subprocess.Popen(
        [sys.executable, "-m", "webapp", "dev", "--port", str(port)],
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
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
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
