"""Claimers of a limited queue take turns on its row (webapp/store/flow.py): a claim counts and
claims in one statement when the turn it read is still the queue's, and otherwise waits for
the turn and counts again. Proven here with a claimer holding the turn, and with several real
processes claiming one job at a time as hard as they can."""

from __future__ import annotations

import multiprocessing
import threading
from collections import defaultdict

import pytest
from sqlalchemy import select

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import queues
from webapp.store import flow, transitions
from webapp.store.extensions import db
from webapp.store.models import Queue
from webapp.store.transaction import unit_of_work

from tests.conftest import postgresql_only
from tests.support.claimer import run_limited_jobs
from tests.test_flow_workers import most_at_once


@postgresql_only
def test_a_claim_that_misses_a_held_turn_waits_for_it_and_counts_the_holders_claim(app):
    queues.set_limits("gpu", {"concurrency": 1}, actor="ops")
    # The second claimer's first job in claim order is not the one the first takes: a count
    # taken before the first claim committed would let it through.
    jobs.create_jobs([{"type": "render", "queue": "gpu", "priority": 10}, {"type": "train", "queue": "gpu"}])
    other: dict[str, list] = {}

    def claim_beside() -> None:
        with app.app_context():
            other["jobs"] = jobs.claim_jobs("second", batch_size=1)

    beside = threading.Thread(target=claim_beside)
    with unit_of_work():  # the first claimer's transaction stays open: it holds the queue's turn
        assert [job.type for job in transitions.claim("first", types=["train"], batch_size=1)] == ["train"]
        beside.start()
        beside.join(1.5)
        # In one statement the second claim passed over the held queue (SKIP LOCKED) and
        # claimed nothing: it now waits for the turn.
        assert beside.is_alive()
    beside.join(10)
    assert other["jobs"] == []  # it counted the first claimer's job: the one slot is taken
    db.session.remove()


@postgresql_only
def test_every_limited_claim_and_every_change_of_the_queue_moves_its_turn(app):
    """A claim in one statement that counted the queue before any of these would otherwise
    claim on a stale count once the change committed."""
    queues.set_limits("gpu", {"concurrency": 5}, actor="ops")
    jobs.create_jobs([{"type": "train", "queue": "gpu"}] * 3)

    def turn() -> int:
        db.session.remove()
        return db.session.execute(select(Queue.claim_turn).where(Queue.name == "gpu")).scalar_one()

    before = turn()
    assert len(jobs.claim_jobs("one-statement", batch_size=1)) == 1
    assert turn() == before + 1
    with unit_of_work():  # a claim that waited for its turn
        assert [queue.name for queue in flow.take_turns(utcnow(), None, None)] == ["gpu"]
    assert turn() == before + 2
    queues.pause("gpu", actor="ops")
    queues.resume("gpu", actor="ops")
    queues.set_limits("gpu", {"concurrency": 4}, actor="ops")
    assert turn() == before + 5


@pytest.mark.slow
def test_limits_hold_with_four_processes_claiming_as_hard_as_they_can(app, database_url):
    concurrency, keys = 2, ["a", "b", "c"]
    queues.set_limits("gpu", {"concurrency": concurrency}, actor="ops")
    queues.set_limits("api", {"key_concurrency": 1}, actor="ops")
    # Two types in every queue and claimers of one type or of both: a claimer's first job in
    # claim order is often not the one another claimer just took, so a count that missed a
    # claim would pass the limit, where the same head job would only be skipped.
    jobs.create_jobs([{"type": kind, "queue": "gpu"} for kind in ("render", "train") * 30])
    jobs.create_jobs(
        [{"type": kind, "queue": "api", "concurrency_key": key} for key in keys * 10 for kind in ("render", "train")]
    )
    db.session.remove()

    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    # One job at a time (each statement its own transaction) and batches of three (one
    # transaction, turns taken in name order first), side by side over two limited queues.
    claimers = {"p0": (["render"], 1), "p1": (["train"], 1), "p2": (None, 3), "p3": (None, 3)}
    processes = [
        context.Process(target=run_limited_jobs, args=(database_url, name, types, batch, 0.02, start, results))
        for name, (types, batch) in claimers.items()
    ]
    for process in processes:
        process.start()
    start.set()
    runs = [run for _ in processes for run in results.get(timeout=240)[1]]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert len(runs) == 120
    by_key: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for queue, key, began, ended in runs:
        by_key[queue, key].append((began, ended))
    assert most_at_once(by_key["gpu", ""]) == concurrency  # reached, never passed
    assert max(most_at_once(by_key["api", key]) for key in keys) == 1
    assert most_at_once([run for key in keys for run in by_key["api", key]]) > 1
