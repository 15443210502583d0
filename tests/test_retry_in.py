"""A handler that knows how long to wait before the retry (an upstream's 429 with
Retry-After, a quota that resets at the hour) says so: `JobFailed(..., retry_in_s=…)`, as
Sidekiq's `sidekiq_retry_in` and Oban's `backoff/1` let a job choose its own wait. The
attempt counts as failed; the retry waits that long instead of the backoff."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

from webapp.domain.limits import MAX_DELAY_S
from webapp.domain.timeutil import utcnow
from webapp.worker import JobFailed

from tests.support.worker_process import running_worker, wait_for
from tests.test_leases import internal


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def claimed_job(client, max_attempts: int = 3) -> dict:
    client.post("/api/jobs", json={"type": "demo", "max_attempts": max_attempts})
    (job,) = internal(client, "/jobs/claim", worker_id="w1", start=True).json["jobs"]
    return job


def test_a_failure_with_retry_in_s_waits_that_long_instead_of_the_backoff(client):
    job = claimed_job(client)
    failed_at = utcnow()
    answer = internal(client, f"/jobs/{job['id']}/fail", lease_token=job["lease_token"], error="429", retry_in_s=600)
    assert answer.status_code == 200, answer.json
    shown = client.get(f"/api/jobs/{job['id']}").json
    assert shown["status"] == "queued" and shown["attempt"] == 1
    waits = at(shown["run_after"]) - failed_at
    assert timedelta(seconds=599) < waits < timedelta(seconds=605), waits
    assert shown["attempts"][0]["outcome"] == "failed" and shown["attempts"][0]["error"] == "429"


def test_retry_in_s_on_the_last_attempt_fails_the_job(client):
    job = claimed_job(client, max_attempts=1)
    internal(client, f"/jobs/{job['id']}/fail", lease_token=job["lease_token"], error="429", retry_in_s=5)
    assert client.get(f"/api/jobs/{job['id']}").json["status"] == "failed"


@pytest.mark.parametrize("wrong", [-1, MAX_DELAY_S + 1, True, "60"])
def test_a_retry_in_s_that_cannot_be_meant_is_a_400_naming_it_and_changes_nothing(client, wrong):
    job = claimed_job(client)
    answer = internal(client, f"/jobs/{job['id']}/fail", lease_token=job["lease_token"], error="429", retry_in_s=wrong)
    assert answer.status_code == 400 and answer.json["field"] == "retry_in_s", answer.json
    assert client.get(f"/api/jobs/{job['id']}").json["status"] == "running"


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"retry_in_s": -1}, "from 0 to"),
        ({"retry_in_s": MAX_DELAY_S + 1}, "from 0 to"),
        ({"retry_in_s": True}, "from 0 to"),
        ({"retry_in_s": "60"}, "from 0 to"),
        ({"retry_in_s": float("nan")}, "from 0 to"),
        ({"retry_in_s": 5, "retryable": False}, "nothing is retried"),
    ],
)
def test_a_handler_asking_for_a_wait_that_cannot_be_meant_is_told_where_it_raises(arguments, says):
    with pytest.raises(ValueError, match=says):
        JobFailed("429", **arguments)


def test_a_real_worker_retries_when_the_handler_said_not_sooner(server, tmp_path):
    api = f"{server.url}/api/jobs"
    log = tmp_path / "worker.log"
    with running_worker(server.url, log, "w-retry-in", "--types", "test.rate_limited"):
        soon = requests.post(api, json={"type": "test.rate_limited", "payload": {"retry_in_s": 1.5}}, timeout=10)
        later = requests.post(api, json={"type": "test.rate_limited", "payload": {"retry_in_s": 3600}}, timeout=10)
        soon_id, later_id = soon.json()["id"], later.json()["id"]
        shown = lambda job_id: requests.get(f"{api}/{job_id}", timeout=10).json()  # noqa: E731
        wait_for(lambda: shown(soon_id)["status"] == "completed", what="the 1.5 s retry ran", logs=(log,))
        waiting = wait_for(
            lambda: shown(later_id)["attempts"][0]["outcome"] == "failed" and shown(later_id), logs=(log,)
        )
        assert waiting["status"] == "queued" and at(waiting["run_after"]) - utcnow() > timedelta(minutes=59)
    done = shown(soon_id)
    first, second = done["attempts"]
    assert first["error"] == "429 Too Many Requests from upstream" and done["result"] == {"attempt": 2}
    waited = at(second["started_at"]) - at(first["finished_at"])
    assert timedelta(seconds=1.5) <= waited < timedelta(seconds=4.5), waited
