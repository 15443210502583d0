"""A worker's round (a claim that starts its jobs, then one /reports request completing them)
is parsed by psycopg once per statement shape, not once per request
(webapp.store.parsed_statements): over 4,096 bytes psycopg used to parse the claim and the
batch of completes again on every execution, 0.4-0.5 ms of the server's CPU each."""

from __future__ import annotations

from psycopg import _queries

from webapp import jobs

from tests.conftest import INTERNAL_KEY, postgresql_only

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}
BATCH = 3


def worker_round(client) -> None:
    answer = client.post(
        "/api/internal/jobs/claim",
        json={"worker_id": "w1", "types": ["t"], "batch_size": BATCH, "start": True},
        headers=KEY,
    )
    claimed = answer.json["jobs"]
    assert len(claimed) == BATCH
    items = [{"kind": "complete", "job_id": job["id"], "lease_token": job["lease_token"]} for job in claimed]
    answer = client.post("/api/internal/reports", json={"items": items}, headers=KEY)
    assert [item["code"] for item in answer.json["results"]] == [200] * BATCH


@postgresql_only
def test_a_worker_s_claim_and_reports_are_not_parsed_again_each_round(app, client, monkeypatch):
    jobs.create_jobs([{"type": "t"}] * (2 * BATCH))
    worker_round(client)  # the statements' first executions parse them, into the cache
    parsed_again: list[int] = []
    uncached = _queries._query2pg_nocache  # what psycopg calls for a statement it does not cache

    def counted(query: bytes, encoding: str):
        parsed_again.append(len(query))
        return uncached(query, encoding)

    monkeypatch.setattr(_queries, "_query2pg_nocache", counted)
    worker_round(client)
    assert parsed_again == []
