"""Flow control in the claim statement (webapp.store.flow), on each database: named queues,
pause, concurrency, key concurrency and the sliding-window rate limit, each as the claim
itself decides it. The multi-process proofs are in test_flow_workers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import event, func, select

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import queues
from webapp.store import flow, transitions, wakeup
from webapp.store.extensions import db
from webapp.store.models import QueueStart
from webapp.store.transaction import unit_of_work

from tests.conftest import postgresql_only


def claim(worker: str = "w", *, batch_size: int = 1, now=None, **kwargs) -> list[int]:
    with unit_of_work():
        return [job.id for job in transitions.claim(worker, batch_size=batch_size, now=now, **kwargs)]


class ClaimStatements:
    """Counts the claim statements (UPDATEs of jobs) sent inside the block."""

    def __init__(self) -> None:
        self.claims = 0

    def record(self, _connection, _cursor, statement: str, *_args) -> None:
        if "UPDATE jobs SET status" in statement:
            self.claims += 1

    def __enter__(self) -> ClaimStatements:
        event.listen(db.engine, "before_cursor_execute", self.record)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(db.engine, "before_cursor_execute", self.record)


def finish(job_id: int) -> None:
    job = jobs.get_job(job_id)
    with unit_of_work():
        transitions.transition(job_id, "start", actor="w", lease_token=job.lease_token)
    jobs.complete_job(job_id, job.lease_token, result=None)


def test_a_job_has_a_queue_default_and_a_worker_claims_only_its_queues(app):
    default = jobs.create_job(type="t")
    mail = jobs.create_job(type="t", queue="mail")
    assert default.queue == "default"

    assert claim(queues=["mail"], batch_size=10) == [mail.id]
    assert claim(queues=["mail"], batch_size=10) == []
    assert claim(batch_size=10) == [default.id]


def test_a_paused_queue_is_skipped_and_its_running_jobs_go_on(app):
    running = jobs.create_job(type="t", queue="q")
    assert claim() == [running.id]
    waiting = jobs.create_job(type="t", queue="q")
    queues.pause("q", actor="ops", reason="incident")

    assert claim(batch_size=10) == []
    assert jobs.get_job(running.id).status == "claimed"
    queues.resume("q", actor="ops")
    assert claim(batch_size=10) == [waiting.id]
    assert [(e.action, e.actor, e.reason) for e in reversed(queues.events_of("q"))] == [
        ("pause", "ops", "incident"),
        ("resume", "ops", None),
    ]


def test_concurrency_counts_claimed_and_running_jobs_of_the_queue(app):
    queues.set_limits("gpu", {"concurrency": 2}, actor="ops")
    made = [jobs.create_job(type="t", queue="gpu").id for _ in range(5)]
    other = jobs.create_job(type="t").id

    first = claim(batch_size=10)
    assert sorted(first) == sorted([other, *made[:2]])
    assert claim(batch_size=10) == []
    finish(made[0])
    assert claim(batch_size=10) == [made[2]]


def test_key_concurrency_holds_per_key_and_lets_other_keys_through(app):
    queues.set_limits("api", {"key_concurrency": 1}, actor="ops")
    a1 = jobs.create_job(type="t", queue="api", concurrency_key="a").id
    a2 = jobs.create_job(type="t", queue="api", concurrency_key="a").id
    b1 = jobs.create_job(type="t", queue="api", concurrency_key="b").id
    unkeyed = jobs.create_job(type="t", queue="api").id

    assert sorted(claim(batch_size=10)) == sorted([a1, b1, unkeyed])
    finish(a1)
    assert claim(batch_size=10) == [a2]


def test_the_rate_limit_is_a_sliding_window_not_a_bucket(app):
    queues.set_limits("calls", {"rate_limit": {"limit": 3, "period_s": 10}}, actor="ops")
    made = [jobs.create_job(type="t", queue="calls").id for _ in range(8)]
    start = utcnow()

    assert claim(batch_size=2, now=start) == made[:2]
    assert claim(batch_size=5, now=start + timedelta(seconds=6)) == made[2:3]
    # Ten seconds after the first two: they leave the window, the third is still in it.
    assert claim(batch_size=5, now=start + timedelta(seconds=9.999)) == []
    assert claim(batch_size=5, now=start + timedelta(seconds=10)) == made[3:5]
    assert claim(batch_size=5, now=start + timedelta(seconds=15.9)) == []
    assert claim(batch_size=5, now=start + timedelta(seconds=16)) == made[5:6]
    assert claim(batch_size=5, now=start + timedelta(seconds=100)) == made[6:8]
    # Pruned: only the starts a window ending now (less a margin for clocks) can still count are kept.
    kept = db.session.execute(select(func.count()).select_from(QueueStart)).scalar_one()
    assert kept == 2


def test_one_claim_takes_a_batch_up_to_each_key_and_queue_room_in_claim_order(app):
    queues.set_limits("api", {"concurrency": 5, "key_concurrency": 2}, actor="ops")
    a = [jobs.create_job(type="t", queue="api", concurrency_key="a").id for _ in range(4)]
    b = [jobs.create_job(type="t", queue="api", concurrency_key="b").id for _ in range(4)]
    urgent = jobs.create_job(type="t", queue="api", concurrency_key="c", priority=5).id
    c = jobs.create_job(type="t", queue="api", concurrency_key="c").id
    statements = ClaimStatements()
    with statements:
        taken = claim(batch_size=10)
    # Two per key, five in all, the first in claim order: c's urgent job, then a, a, b, b.
    assert taken == [urgent, *a[:2], *b[:2]]
    assert statements.claims == 1  # the fast part and the limited part: one statement for the batch
    assert claim(batch_size=10) == []  # the queue is full
    finish(a[0])
    finish(urgent)
    assert claim(batch_size=10) == [a[2], c]


def test_a_full_key_at_the_head_of_the_queue_does_not_hold_back_the_others(app):
    queues.set_limits("api", {"key_concurrency": 1}, actor="ops")
    busy = [jobs.create_job(type="t", queue="api", concurrency_key="busy").id for _ in range(60)]
    other = jobs.create_job(type="t", queue="api", concurrency_key="other").id
    assert claim() == [busy[0]]
    # Sixty rows of a full key come first in claim order; a claim of one looks past them.
    assert claim() == [other]
    assert claim(batch_size=10) == []


def test_the_rate_limit_and_concurrency_together_take_the_smaller_room(app):
    queues.set_limits("calls", {"concurrency": 4, "rate_limit": {"limit": 3, "period_s": 60}}, actor="ops")
    made = [jobs.create_job(type="t", queue="calls").id for _ in range(6)]
    start = utcnow()
    assert claim(batch_size=10, now=start) == made[:3]  # the window's 3, though 4 slots are free
    finish(made[0])
    finish(made[1])
    later = start + timedelta(seconds=61)
    assert claim(batch_size=10, now=later) == made[3:6]  # the window reopened: 3 left of 4 slots minus 1 live


def test_two_limited_queues_share_one_claim_in_priority_order(app):
    queues.set_limits("gpu", {"concurrency": 1}, actor="ops")
    queues.set_limits("cpu", {"concurrency": 2}, actor="ops")
    gpu = [jobs.create_job(type="t", queue="gpu").id for _ in range(2)]
    cpu = [jobs.create_job(type="t", queue="cpu", priority=1).id for _ in range(3)]
    assert claim(batch_size=10) == [*cpu[:2], gpu[0]]


def test_a_cleared_limit_puts_the_queue_back_on_the_fast_path(app):
    queues.set_limits("gpu", {"concurrency": 0}, actor="ops")
    job = jobs.create_job(type="t", queue="gpu").id
    assert claim() == []
    queues.set_limits("gpu", {"concurrency": None}, actor="ops")
    assert claim() == [job]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"concurrency": -1}, "concurrency"),
        ({"key_concurrency": 0}, "key_concurrency"),
        ({"rate_limit": {"limit": 0, "period_s": 1}}, "rate_limit.limit"),
        ({"rate_limit": {"limit": 5, "period_s": 10**9}}, "rate_limit.period_s"),
        ({"rate_limit": {"limit": 5}}, "rate_limit"),
        ({"paused": True}, "paused"),
    ],
)
def test_bad_limits_name_the_field_and_change_nothing(app, changes, field):
    queues.set_limits("q", {"concurrency": 3}, actor="ops")
    with pytest.raises(jobs.BadQuery) as refused:
        queues.set_limits("q", changes, actor="ops")
    assert refused.value.field == field
    (view,) = queues.list_queues()
    assert (view.concurrency, view.key_concurrency, view.rate_limit) == (3, None, None)


def test_pausing_an_unknown_queue_is_refused(app):
    with pytest.raises(queues.UnknownQueue):
        queues.pause("nobody", actor="ops")
    assert queues.list_queues() == []


def test_a_unique_key_held_by_a_live_job_answers_with_that_job(app):
    first = jobs.create_job_once(type="import", unique_key="nightly")
    second = jobs.create_job_once(type="import", unique_key="nightly")
    other_type = jobs.create_job_once(type="export", unique_key="nightly")
    assert (first.duplicate, second.duplicate, other_type.duplicate) == (False, True, False)
    assert second.job.id == first.job.id

    (claimed,) = claim()
    finish(claimed)
    third = jobs.create_job_once(type="import", unique_key="nightly")
    assert not third.duplicate
    within = jobs.create_job_once(type="import", unique_key="nightly", unique_for_s=60)
    assert within.duplicate and within.job.id == third.job.id


def test_unique_for_s_matches_a_job_finished_within_the_window(app):
    job = jobs.create_job_once(type="import", unique_key="k").job
    (claimed,) = claim()
    finish(claimed)
    assert jobs.create_job_once(type="import", unique_key="k", unique_for_s=3600).job.id == job.id
    assert not jobs.create_job_once(type="import", unique_key="k").duplicate


def test_the_dev_samples_hold_a_limited_queue(app):
    from webapp.cli.devserver import SAMPLE_QUEUE, seed_samples

    seed_samples()
    view = queues.get_queue(SAMPLE_QUEUE)
    assert (view.concurrency, view.queued) == (1, 3)
    assert len(claim(batch_size=100, queues=[SAMPLE_QUEUE])) == 1


# --- waking claims when a finish frees a slot (PostgreSQL: its listeners are other processes) ---


@contextmanager
def notifications() -> Iterator[Callable[[], list[str]]]:
    """A LISTEN connection of its own, as another replica's: yields a function giving the
    wake-up notifications delivered so far (it waits one second for stragglers)."""
    conninfo = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    received: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {wakeup.CHANNEL}")

        def delivered() -> list[str]:
            received.extend(notice.payload for notice in listener.notifies(timeout=1.0))
            return received

        yield delivered


class NotifyStatements(ClaimStatements):
    """Counts the statements sent only to notify (`SELECT pg_notify(…)`)."""

    def record(self, _connection, _cursor, statement: str, *_args) -> None:
        if statement.lstrip().startswith("SELECT pg_notify"):
            self.claims += 1


def claimed_and_started(count: int, queue: str) -> list[jobs.CompleteReport]:
    made = jobs.create_jobs([{"type": "t", "queue": queue}] * count)
    held = jobs.claim_jobs("w", batch_size=count)
    assert sorted(job.id for job in held) == [job.id for job in made]
    jobs.start_jobs([jobs.StartReport(job.id, job.lease_token) for job in held])
    return [jobs.CompleteReport(job.id, job.lease_token) for job in held]


@postgresql_only
@pytest.mark.parametrize("count", [1, 3])  # one job (`transition`), a worker's batch (`transition_held`)
def test_a_finish_that_frees_a_limited_slot_notifies_from_its_own_statement(app, monkeypatch, count):
    queues.set_limits("gpu", {"concurrency": 5}, actor="ops")
    monkeypatch.setattr(
        flow, "_hints_seen", (float("-inf"), flow.FlowHints(False, False))
    )  # no stale hint from an earlier test
    reports = claimed_and_started(count, "gpu")
    with notifications() as delivered, NotifyStatements() as separate:
        jobs.complete_jobs(reports)
        assert len(delivered()) == 1  # every other replica's waiting claims look at the freed slot
    assert separate.claims == 0  # no round trip of its own


@postgresql_only
def test_a_finish_that_frees_no_limited_slot_wakes_no_other_process(app, monkeypatch):
    queues.set_limits("gpu", {"concurrency": 5}, actor="ops")  # limits are in use, elsewhere
    monkeypatch.setattr(flow, "_hints_seen", (float("-inf"), flow.FlowHints(False, False)))
    reports = claimed_and_started(2, "default")
    with notifications() as delivered:
        jobs.complete_jobs(reports)
        assert delivered() == []


@pytest.mark.parametrize("one_statement", [True, False], ids=["autocommit", "in_a_transaction"])
def test_limited_and_unlimited_queues_are_claimed_in_one_claim_order(app, one_statement):
    """By priority, then age, across both parts of the claim: PostgreSQL took a limited queue
    with room first, SQLite the queues without limits first. `one_statement`: a one-job claim
    as the worker's (autocommit on PostgreSQL, its turns taken in its statement), or one inside a
    transaction (its turns taken first)."""
    queues.set_limits("gpu", {"concurrency": 5}, actor="ops")
    older_plain = jobs.create_job(type="t").id
    gpu_urgent = jobs.create_job(type="t", queue="gpu", priority=5).id
    gpu = jobs.create_job(type="t", queue="gpu").id
    newer_plain = jobs.create_job(type="t").id

    def claim_one() -> list[int]:
        if one_statement:
            return [job.id for job in jobs.claim_jobs("w", batch_size=1)]
        return claim(batch_size=1)

    assert [claim_one() for _ in range(5)] == [[gpu_urgent], [older_plain], [gpu], [newer_plain], []]
