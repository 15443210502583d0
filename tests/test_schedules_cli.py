"""`jobwarden schedules …` against a real server: add, list, pause, resume, trigger, rm, and a refusal."""

from __future__ import annotations

import json

from tests.test_client import jobwarden


def test_the_schedules_commands_drive_the_api(server):
    added = jobwarden(
        "schedules", "add", "nightly", "--type", "report", "--cron", "30 2 * * *", "--timezone", "Europe/Berlin",
        server_url=server.url,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["description"] == "every day at 02:30 Europe/Berlin"
    listed = jobwarden("schedules", "list", server_url=server.url)
    header, row = listed.stdout.splitlines()
    assert header.split() == ["SCHEDULE", "STATE", "WHEN", "NEXT", "FIRE", "LAST", "RUN"]
    assert row.startswith("nightly ") and "every day at 02:30 Europe/Berlin" in row and row.endswith("no runs")
    assert "paused" in jobwarden("schedules", "pause", "nightly", server_url=server.url).stdout
    assert "active" in jobwarden("schedules", "resume", "nightly", server_url=server.url).stdout
    triggered = jobwarden("schedules", "trigger", "nightly", server_url=server.url)
    assert triggered.returncode == 0 and triggered.stdout.startswith("job ") and "queued" in triggered.stdout
    listed = json.loads(jobwarden("schedules", "list", "--json", server_url=server.url).stdout)
    assert listed[0]["last_job"]["status"] == "queued"
    assert jobwarden("schedules", "rm", "nightly", server_url=server.url).returncode == 0
    missing = jobwarden("schedules", "trigger", "nightly", server_url=server.url)
    assert missing.returncode == 1 and "no schedule named 'nightly'" in missing.stderr


def test_a_bad_cron_is_refused_with_the_field(server):
    done = jobwarden("schedules", "add", "x", "--type", "t", "--cron", "99 * * * *", server_url=server.url)
    assert done.returncode == 1 and "cron" in done.stderr
