"""What a claim answers for durable steps (`step_results`, `checkpoint`), and what it costs:
a job in its first attempt cannot have stored any (they are written under a lease, and its
first lease is that claim), so its claim reads neither table; a later attempt's claim does."""

from __future__ import annotations

from benchmarks._support import statements_run
from webapp import jobs
from webapp.store.extensions import db

from tests.conftest import INTERNAL_KEY

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}
REPLAY_TABLES = ("job_step_results", "job_checkpoints")


def claim(client) -> dict:
    answer = client.post("/api/internal/jobs/claim", headers=KEY, json={"worker_id": "w1", "types": ["t"]})
    assert answer.status_code == 200, answer.get_json()
    (claimed,) = answer.get_json()["jobs"]
    return claimed


def report(client, path: str, body: dict) -> None:
    answer = client.post(f"/api/internal/jobs/{path}", headers=KEY, json=body)
    assert answer.status_code == 200, answer.get_json()


def test_a_first_attempt_s_claim_reads_no_step_table_and_a_later_one_replays(app):
    client = app.test_client()
    created = jobs.create_job(type="t", max_attempts=2)
    with statements_run(db.engine) as first_claim:
        first = claim(client)
    assert first["attempt"] == 1 and first["step_results"] == {} and first["checkpoint"] is None
    assert not [sql for sql, _ in first_claim if any(table in sql for table in REPLAY_TABLES)]

    lease = {"lease_token": first["lease_token"]}
    report(client, f"{created.id}/start", lease)
    report(client, f"{created.id}/steps", {**lease, "name": "fetch", "event": "completed", "attempt": 1, "result": 7})
    report(client, f"{created.id}/heartbeat", {**lease, "checkpoint": {"data": {"page": 3}, "step": "fetch"}})
    report(client, f"{created.id}/fail", {**lease, "error": "deploy", "retryable": True, "interrupted": True})

    with statements_run(db.engine) as second_claim:
        second = claim(client)
    assert second["attempt"] == 2
    assert second["step_results"] == {"fetch": {"result": 7, "attempt": 1}}
    assert second["checkpoint"]["data"] == {"page": 3}
    assert [sql for sql, _ in second_claim if any(table in sql for table in REPLAY_TABLES)]
