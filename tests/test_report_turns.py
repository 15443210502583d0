"""A batch of worker reports never holds the write lock for seconds (issue 24, item 6).
That back-to-back maximal batches never starve another client's write is not yet held
(docs/reliability.md, "Hardening probes"): no test claims it.

A batch's work is capped in time (`limits.REPORT_BATCH_BUDGET_S`): the items past it are
answered 503 `deferred`, nothing of them written, and the worker sends them again. On
SQLite batches take turns and leave the lock free after a long one (`store.batch_turns`):
before, another client's create waited 11 s behind 4 workers' back-to-back batches.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from webapp.domain.limits import DEFERRED
from webapp.server.api import internal
from webapp.store.extensions import db
from webapp.store.models import JobEvent
from webapp.worker.protocol import WorkerClient
from webapp.worker.reports import ReportBatcher

from tests.conftest import INTERNAL_KEY
from tests.test_step_reports import KEY, running_job  # noqa: F401 (a fixture)

# Before the turns a create waited up to 3.8–11 s behind 4 senders (load 15–22); after, 0.43–0.64 s.


def step_items(job_id: int, token: str, count: int, first: int = 0) -> list[dict]:
    return [
        {"kind": "step", "job_id": job_id, "lease_token": token, "name": f"s{n}", "event": "started"}
        for n in range(first, first + count)
    ]


@pytest.fixture
def no_budget(monkeypatch):
    """Every batch's time is up after its first item."""
    monkeypatch.setattr(internal, "REPORT_BATCH_BUDGET_S", 0.0)


def recorded_steps(job_id: int) -> set[str]:
    db.session.rollback()  # see the server's commits
    events = db.session.scalars(select(JobEvent.data).where(JobEvent.job_id == job_id, JobEvent.kind == "step"))
    return {event["name"] for event in events}


def test_on_sqlite_the_items_past_the_budget_are_deferred_unwritten(client, backend, running_job, no_budget):  # noqa: F811
    """PostgreSQL locks rows, not the store: there a batch is never cut short."""
    job_id, token = running_job
    answer = client.post("/api/internal/reports", json={"items": step_items(job_id, token, 5)}, headers=KEY)

    results = answer.get_json()["results"]
    if backend == "postgresql":
        assert [r["code"] for r in results] == [200] * 5
        assert recorded_steps(job_id) == {f"s{n}" for n in range(5)}
        return
    assert [r["code"] for r in results] == [200, 503, 503, 503, 503]
    assert {r.get("error") for r in results[1:]} == {DEFERRED}
    assert recorded_steps(job_id) == {"s0"}


def test_the_worker_sends_deferred_reports_again_until_each_is_answered(app, running_job, no_budget):  # noqa: F811
    """A real worker client and its batcher against the app on a loopback socket: 30 threads
    report at once, the server applies one item a batch (on SQLite), and every report is answered and kept."""
    job_id, token = running_job
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        batcher = ReportBatcher(WorkerClient(f"http://127.0.0.1:{server.port}", internal_key=INTERNAL_KEY))
        answers: list[dict] = []

        def report(n: int) -> None:
            answers.append(batcher.send("step", job_id, token, name=f"s{n}", event="started"))

        threads = [threading.Thread(target=report, args=(n,)) for n in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        server.shutdown()
    assert len(answers) == 30
    assert recorded_steps(job_id) == {f"s{n}" for n in range(30)}
