"""A batch of worker reports never holds the write lock for seconds, and back-to-back
maximal batches do not starve another client's write (issue 24, item 6).

A batch's work is capped in time (`limits.REPORT_BATCH_BUDGET_S`): the items past it are
answered 503 `deferred`, nothing of them written, and the worker sends them again. On
SQLite batches take turns and leave the lock free after a long one (`store.batch_turns`):
before, another client's create waited 11 s behind 4 workers' back-to-back batches.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from webapp.domain.limits import DEFERRED, MAX_REPORTS_PER_BATCH
from webapp.server.api import internal
from webapp.store.extensions import db
from webapp.store.models import JobEvent
from webapp.worker.protocol import WorkerClient
from webapp.worker.reports import ReportBatcher

from tests.conftest import INTERNAL_KEY
from tests.test_step_reports import KEY, running_job  # noqa: F401 (a fixture)

# Before the turns a create waited up to 3.8–11 s behind 4 senders (load 15–22); after, 0.43–0.64 s.
CREATE_WAITS_AT_MOST_S = 1.5


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


@pytest.mark.slow
def test_another_clients_create_waits_about_a_batch_behind_back_to_back_maximal_batches(server):
    """4 workers' threads post maximal step batches without pause for 10 s; another client
    creates a job every 0.1 s, and none of its creates waits more than a few batches."""
    http = requests.Session()
    jobs = []
    for n in range(4):
        assert http.post(f"{server.url}/api/jobs", json={"type": "batches"}).status_code == 201
        claim = http.post(
            f"{server.url}/api/internal/jobs/claim", json={"worker_id": f"w{n}", "types": ["batches"]}, headers=KEY
        )
        [job] = claim.json()["jobs"]
        http.post(
            f"{server.url}/api/internal/jobs/{job['id']}/start", json={"lease_token": job["lease_token"]}, headers=KEY
        )
        jobs.append((job["id"], job["lease_token"]))
    stop = threading.Event()
    applied = []

    def send(job_id: int, token: str) -> None:
        session, first = requests.Session(), 0
        while not stop.is_set():
            items = step_items(job_id, token, MAX_REPORTS_PER_BATCH, first)
            codes = [
                r["code"]
                for r in session.post(
                    f"{server.url}/api/internal/reports", json={"items": items}, headers=KEY, timeout=120
                ).json()["results"]
            ]
            assert set(codes) <= {200, 503}, codes
            first += codes.count(200)
            applied.append(codes.count(200))

    senders = [threading.Thread(target=send, args=job) for job in jobs]
    for sender in senders:
        sender.start()
    waits = []
    try:
        ends = time.monotonic() + 10
        while time.monotonic() < ends:
            begun = time.monotonic()
            assert http.post(f"{server.url}/api/jobs", json={"type": "other"}, timeout=120).status_code == 201
            waits.append(time.monotonic() - begun)
            time.sleep(0.1)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=120)
    assert sum(applied) > 0 and len(waits) >= 10
    assert max(waits) <= CREATE_WAITS_AT_MOST_S, f"creates waited up to {max(waits):.2f} s ({len(waits)} creates)"
