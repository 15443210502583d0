"""`jobwarden alerts …` against a real server: add, list, disable, enable and remove rules, list
alerts, a refusal."""

from __future__ import annotations

import json

from tests.test_client import jobwarden


def test_the_alert_commands_drive_the_api(server):
    added = jobwarden(
        "alerts", "rules", "add", "failure_rate", "--subject", "video.transcode", "--threshold", "0.6",
        "--window", "900", server_url=server.url,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    rule = json.loads(added.stdout)
    assert rule["description"] == "failure_rate of type video.transcode ≥ 60 % over 15 min"
    listed = jobwarden("alerts", "rules", "list", server_url=server.url)
    assert f"{rule['id']:>6} quiet      failure_rate of type video.transcode" in listed.stdout
    assert jobwarden("alerts", "rules", "disable", str(rule["id"]), server_url=server.url).returncode == 0
    listed = jobwarden("alerts", "rules", "list", server_url=server.url)
    assert f"{rule['id']:>6} disabled   failure_rate of type video.transcode" in listed.stdout
    enabled = jobwarden("alerts", "rules", "enable", str(rule["id"]), server_url=server.url)
    assert enabled.returncode == 0 and f"rule {rule['id']} enabled" in enabled.stderr
    assert json.loads(jobwarden("alerts", "rules", "list", "--json", server_url=server.url).stdout)[0]["enabled"]
    alerts = jobwarden("alerts", "list", server_url=server.url)
    assert alerts.returncode == 0 and "No alerts." in alerts.stderr
    assert jobwarden("alerts", "rules", "rm", str(rule["id"]), server_url=server.url).returncode == 0
    missing = jobwarden("alerts", "rules", "rm", str(rule["id"]), server_url=server.url)
    assert missing.returncode == 1 and f"alert rule {rule['id']} not found" in missing.stderr
    gone = jobwarden("alerts", "rules", "disable", str(rule["id"]), server_url=server.url)
    assert gone.returncode == 1 and f"alert rule {rule['id']} not found" in gone.stderr


def test_a_bad_threshold_is_refused_naming_it(server):
    done = jobwarden("alerts", "rules", "add", "failure_rate", "--threshold", "2", server_url=server.url)
    assert done.returncode == 1 and "threshold" in done.stderr
