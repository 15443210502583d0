"""Waking waiting claims costs what the new jobs need, not what the idle workers number: with
many claims waiting on a real server (gunicorn, two processes), creating a job wakes about one
claim per server process, of the claims that take its type (issue 24: with 500 waiting claims
every creation cost 500 claim statements)."""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest
import requests

from benchmarks._support import wait_until
from webapp.client import JobwardenClient
from webapp.worker.protocol import WorkerClient

from tests.conftest import INTERNAL_KEY
from tests.support.server import running_server

pytestmark = pytest.mark.slow

WAITING = 40  # claims for the type the test creates
OTHERS = 20  # claims for another type, waiting longer (the first a careless wake-up would pick)
# Per new job: the committing process's own wake-up, plus one per process that hears of it from
# the store (PostgreSQL's listeners of the other process; SQLite's file watchers of both).
CLAIMS_PER_JOB = 4
CLAIM_WAIT_S = 30


def claim_statements(url: str) -> float:
    """Claim calls the server's processes ran (the claim latency histogram's count, summed)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("jobwarden_claim_latency_seconds_count")
    )


def all_claimed(answers: dict[str, list], job_ids: list[int]) -> bool:
    return set(job_ids) <= {job["id"] for claimed in answers.values() for job in claimed}


def test_a_new_job_wakes_about_one_waiting_claim_per_process_of_those_that_take_it(app, database_url, tmp_path):
    with running_server(database_url, tmp_path / "server.log", deployed=True) as server:
        claimer = WorkerClient(server.url, internal_key=INTERNAL_KEY, timeout=30)
        api = JobwardenClient(server.url, timeout=30)
        claimer.claim("boot", ["demo.noop"])  # the server's processes have booted
        answers: dict[str, list] = {}

        def wait_for_a_job(worker_id: str, job_type: str) -> None:
            answers[worker_id] = claimer.claim(worker_id, [job_type], wait_s=CLAIM_WAIT_S)

        threads = []
        for n in range(OTHERS + WAITING):
            worker_id, job_type = (f"other{n}", "other.type") if n < OTHERS else (f"noop{n}", "demo.noop")
            threads.append(threading.Thread(target=wait_for_a_job, args=(worker_id, job_type)))
            threads[-1].start()
            if n == OTHERS - 1:
                wait_until(lambda: claim_statements(server.url) >= 1 + OTHERS, timeout=20, what="the first claims")
        wait_until(lambda: claim_statements(server.url) >= 1 + OTHERS + WAITING, timeout=20, what="every claim")
        time.sleep(0.5)  # each has looked once and waits
        try:
            for jobs_at_once in (1, 3):
                before = claim_statements(server.url)
                if jobs_at_once == 1:
                    created = [api.create("demo.noop")["id"]]
                else:
                    created = api.create_many([{"type": "demo.noop"}] * jobs_at_once)
                wait_until(partial(all_claimed, answers, created), timeout=10, what="the new jobs to be claimed")
                time.sleep(1.0)  # any claims woken in vain have looked by now
                spent = claim_statements(server.url) - before
                assert spent <= CLAIMS_PER_JOB * jobs_at_once, f"{spent} claim statements for {jobs_at_once} job(s)"
            assert not any(answers.get(f"other{n}") for n in range(OTHERS))
            assert sum(thread.is_alive() for thread in threads) == OTHERS + WAITING - 4
        finally:
            claimer.hang_up_claims()
            for thread in threads:
                thread.join(timeout=20)


def test_a_claim_woken_for_a_job_that_takes_another_lets_the_next_claim_take_the_new_one(app):
    """One process's hub (the test's app): two new jobs in one create wake one claim for each
    kind that has a taker. The claim woken for `a` takes `b`, of a higher priority; the claim
    that takes only `a` must then be woken for it, not sleep until its wait runs out. (On SQLite
    the process's file watcher also hears the create and wakes a claim again, which hid the gap
    there; PostgreSQL's listener skips its own process's notifications, so there it showed.)"""
    from webapp.store import transitions, wakeup
    from webapp.store.extensions import db

    hub = wakeup.hub()
    answers: dict[str, list] = {}

    def claim(name: str, types: list[str]) -> None:
        response = app.test_client().post(
            "/api/internal/jobs/claim",
            json={"worker_id": name, "types": types, "wait_s": CLAIM_WAIT_S},
            headers={"Authorization": f"Bearer {INTERNAL_KEY}"},
        )
        answers[name] = response.json["jobs"]

    both = threading.Thread(target=claim, args=("both", ["demo.a", "demo.b"]), daemon=True)
    both.start()
    wait_until(lambda: hub.waiting == 1, 30, "the first claim waits")  # the first a wake-up picks
    only_a = threading.Thread(target=claim, args=("only-a", ["demo.a"]), daemon=True)
    only_a.start()
    wait_until(lambda: hub.waiting == 2, 30, "both claims wait")

    new_a, new_b = transitions.create(
        [{"type": "demo.a", "max_attempts": 1}, {"type": "demo.b", "priority": 9, "max_attempts": 1}], actor="api"
    )
    db.session.commit()
    for thread in (both, only_a):
        thread.join(CLAIM_WAIT_S / 3)  # woken, not answered by its wait running out
        assert not thread.is_alive(), "a waiting claim slept while a job it takes waited"
    assert [job["id"] for job in answers["both"]] == [new_b.id]
    assert [job["id"] for job in answers["only-a"]] == [new_a.id]
