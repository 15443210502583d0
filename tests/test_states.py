"""The state machine on real databases: every allowed move, every refused one."""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import pairwise

import psycopg
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from benchmarks._support import statements_run
from webapp import jobs
from webapp.domain import statuses
from webapp.domain.statuses import ALLOWED, LeaseLost, Status, TransitionRefused
from webapp.domain.timeutil import utcnow
from webapp.store import wakeup
from webapp.store.extensions import db
from webapp.store.models import Job

from tests.conftest import postgresql_only
from tests.factories import events_of, make_job

ALL = [str(s) for s in Status]


def contract_table() -> set[tuple[str, str]]:
    """The contract's transition table, written out by hand to check ALLOWED against."""
    live = ["claimed", "running"]
    unfinished = ["pending", "queued", "claimed", "running"]
    pairs = {("pending", "queued"), ("queued", "claimed"), ("claimed", "running"), ("running", "completed")}
    pairs |= {(s, "queued") for s in live}
    pairs |= {(s, "failed") for s in unfinished}
    pairs |= {(s, "cancelled") for s in unfinished}
    pairs |= {("failed", "queued"), ("cancelled", "queued")}
    return pairs


def test_the_transition_table_is_the_contracts():
    assert {(str(a), str(b)) for a, b in ALLOWED} == contract_table()


def apply(job: Job, target: str) -> Job:
    """Move `job` to `target` with the command a user or worker would use."""
    if target == "queued" and job.status in ("claimed", "running"):
        return jobs.fail_job(job.id, job.lease_token, error="boom", retryable=True)
    if target == "queued":
        return jobs.force_start(job.id)
    if target == "claimed":
        (claimed,) = jobs.claim_jobs("w1", types=[job.type])
        return claimed
    if target == "running":
        return jobs.start_job(job.id, job.lease_token or "no-token")
    if target == "completed":
        return jobs.complete_job(job.id, job.lease_token or "no-token", result=1)
    if target == "failed":
        return jobs.mark_failed(job.id, reason="operator says so")
    if target == "cancelled":
        return jobs.cancel_job(job.id, reason="not needed")
    raise AssertionError(target)


@pytest.mark.parametrize(("source", "target"), sorted(contract_table()))
def test_an_allowed_transition_changes_the_status_and_records_one_event(app, source, target):
    job = make_job(source, max_attempts=3)
    before = len(events_of(job.id))

    moved = apply(job, target)

    assert moved.status == target
    assert jobs.get_job(job.id).status == target
    history = events_of(job.id)
    assert len(history) == before + 1
    assert history[-1][1:] == (source, target)


# Nothing but creation leads to pending, and claiming is a query over queued jobs:
# both are checked by their own tests below.
REFUSED = [
    (s, t) for s in ALL for t in ALL if (s, t) not in contract_table() and s != t and t not in ("pending", "claimed")
]


@pytest.mark.parametrize(("source", "target"), REFUSED)
def test_a_refused_transition_names_the_current_status_and_changes_nothing(app, source, target):
    job = make_job(source)
    before = (jobs.get_job(job.id).status, jobs.get_job(job.id).updated_at, len(events_of(job.id)))

    with pytest.raises(TransitionRefused) as refused:
        apply(job, target)

    assert refused.value.status == source
    db.session.expire_all()
    after = jobs.get_job(job.id)
    assert (after.status, after.updated_at, len(events_of(job.id))) == before


@pytest.mark.parametrize("target", ["queued", "failed", "cancelled", "running"])
def test_a_completed_job_never_changes_again(app, target):
    job = make_job("completed")
    with pytest.raises(TransitionRefused, match="current status is completed"):
        apply(job, target)


def test_a_workers_claim_start_and_complete_events_name_the_worker_and_the_attempt(app):
    job = make_job("queued", type="named-worker")
    (claimed,) = jobs.claim_jobs("w-7", types=["named-worker"])
    jobs.start_job(job.id, claimed.lease_token)
    jobs.complete_job(job.id, claimed.lease_token, result={"ok": True})

    events = [(e.action, e.actor, e.attempt) for e in jobs.events_of(job.id)]
    assert events == [
        ("create", "api", None),
        ("claim", "worker:w-7", 1),
        ("start", "worker:w-7", 1),
        ("complete", "worker:w-7", 1),
    ]
    (attempt,) = jobs.attempts_of(job.id)
    assert (attempt.worker_id, attempt.outcome, attempt.exit_code) == ("w-7", "completed", 0)
    assert attempt.started_at is not None and attempt.finished_at is not None


def test_a_stale_lease_token_is_refused_and_changes_nothing(app):
    job = make_job("running")
    stale = job.lease_token
    jobs.fail_job(job.id, stale, error="first attempt died", retryable=True)
    # The job is queued again with backoff; make it due now.
    db.session.execute(update(Job).where(Job.id == job.id).values(run_after=utcnow()))
    db.session.commit()
    (reclaimed,) = jobs.claim_jobs("w2", types=[job.type])
    assert reclaimed.lease_token != stale

    for call in (
        lambda: jobs.start_job(job.id, stale),
        lambda: jobs.complete_job(job.id, stale, result="zombie"),
        lambda: jobs.fail_job(job.id, stale, error="zombie"),
        lambda: jobs.heartbeat(job.id, stale, progress=99),
    ):
        with pytest.raises(LeaseLost) as lost:
            call()
        assert lost.value.status == "claimed"

    db.session.expire_all()
    current = jobs.get_job(job.id)
    assert (current.status, current.worker_id, current.progress, current.result) == ("claimed", "w2", None, None)


def test_cancelling_a_running_job_makes_its_token_dead(app):
    job = make_job("running")
    jobs.cancel_job(job.id, reason="stop")
    with pytest.raises(LeaseLost) as lost:
        jobs.heartbeat(job.id, job.lease_token)
    assert lost.value.status == "cancelled"


def test_a_batch_is_created_in_the_order_given_with_one_create_event_each(app):
    specs = [{"type": f"batch-{n}", "priority": n % 3, "hold": n % 2 == 1} for n in range(300)]

    created = jobs.create_jobs(specs, actor="api")

    assert [(job.type, job.status) for job in created] == [
        (f"batch-{n}", "pending" if n % 2 else "queued") for n in range(300)
    ]
    assert [events_of(job.id) for job in created[:2]] == [[("create", None, "queued")], [("create", None, "pending")]]
    assert all(len(events_of(job.id)) == 1 for job in created)


@pytest.mark.parametrize("hold", [False, True])
def test_one_job_is_created_with_its_event_in_one_statement_on_postgresql(app, backend, hold):
    """A create request's job, its "create" event and (queued) the wake-up of other processes'
    claims: one round trip on PostgreSQL (webapp.store.transitions._create_plan), two statements on SQLite."""
    with statements_run(db.engine) as statements:
        job = jobs.create_job(type="single", payload={"n": 1}, priority=2, hold=hold, actor="api")
    written = [sql for sql, _ in statements if sql.lstrip().startswith(("INSERT", "WITH"))]
    assert len(written) == (1 if backend == "postgresql" else 2), written
    if backend == "postgresql":  # no statement of its own for the NOTIFY either
        assert not [sql for sql, _ in statements if "pg_notify" in sql and sql is not written[0]]
    assert (job.type, job.payload, job.priority, job.status) == ("single", {"n": 1}, 2, "pending" if hold else "queued")
    db.session.expire_all()
    (event,) = jobs.events_of(job.id)
    stored = jobs.get_job(job.id)
    assert (event.kind, event.action, event.actor, event.from_status, event.to_status, event.at) == (
        "status",
        "create",
        "api",
        None,
        stored.status,
        stored.created_at,
    )


@postgresql_only
@pytest.mark.parametrize("hold", [False, True])
def test_a_created_queued_job_notifies_other_processes_on_commit_with_its_kind(app, database_url, hold):
    """Another replica's listener learns of the new queued job (its type and queue, one of them),
    once it committed; a held job wakes nobody."""
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {wakeup.CHANNEL}")
        jobs.create_job(type="heard", queue="q1", hold=hold)
        heard = [json.loads(note.payload) for note in listener.notifies(timeout=1.0)]
    assert [message["jobs"] for message in heard] == ([] if hold else [[["heard", "q1", 1]]])


def test_an_empty_batch_creates_nothing(app):
    assert jobs.create_jobs([]) == []
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_claim_takes_higher_priority_first_then_older(app):
    old_low = make_job(priority=0)
    high = make_job(priority=5)
    new_low = make_job(priority=0)

    claimed = jobs.claim_jobs("w1", batch_size=3)

    assert [j.id for j in claimed] == [high.id, old_low.id, new_low.id]


def test_a_claim_hands_out_at_most_batch_size_jobs(app):
    for _ in range(30):
        make_job()

    assert len(jobs.claim_jobs("w1", batch_size=7)) == 7
    assert jobs.count_by_status()["claimed"] == 7


def test_claim_skips_jobs_held_back_by_run_after(app):
    job = make_job()
    db.session.execute(update(Job).where(Job.id == job.id).values(run_after=utcnow() + timedelta(minutes=5)))
    db.session.commit()

    assert jobs.claim_jobs("w1") == []


def test_claim_takes_only_the_requested_types(app):
    make_job(type="video")
    audio = make_job(type="audio")

    claimed = jobs.claim_jobs("w1", types=["audio"], batch_size=5)

    assert [j.id for j in claimed] == [audio.id]


@pytest.mark.parametrize("status", [s for s in ALL if s != "queued"])
def test_claim_never_hands_out_a_job_that_is_not_queued(app, status):
    job = make_job(status)
    assert jobs.claim_jobs("w1", batch_size=5) == []
    assert jobs.get_job(job.id).status == status


def test_no_command_moves_a_job_back_to_pending(app):
    assert not any(edge.target == "pending" for edge in statuses.EDGES.values())


def test_each_claim_issues_a_fresh_token_and_opens_an_attempt(app):
    job = make_job(max_attempts=3)
    (first,) = jobs.claim_jobs("w1")
    first_token = first.lease_token
    jobs.fail_job(job.id, first_token, error="try again", retryable=True)
    db.session.execute(update(Job).where(Job.id == job.id).values(run_after=utcnow()))
    db.session.commit()
    (second,) = jobs.claim_jobs("w2")

    assert second.attempt == 2 and len(second.lease_token) == 32 and second.lease_token != first_token
    attempts = jobs.attempts_of(job.id)
    assert [(a.number, a.worker_id, a.outcome) for a in attempts] == [(1, "w1", "failed"), (2, "w2", None)]


def test_a_failure_with_attempts_left_requeues_with_backoff(app):
    job = make_job("running", max_attempts=2)

    retried = jobs.fail_job(job.id, job.lease_token, error="network down", exit_code=3)

    assert retried.status == "queued"
    assert retried.run_after > utcnow() + timedelta(seconds=2)
    assert retried.last_error == "network down" and retried.lease_token is None


def test_backoff_grows_with_each_attempt(app):
    delays = [jobs.retry_delay(n) for n in (1, 2, 3, 4)]
    assert all(later > earlier for earlier, later in pairwise(delays))


def test_a_failure_with_no_attempts_left_fails_the_job(app):
    job = make_job("running", max_attempts=1)

    failed = jobs.fail_job(job.id, job.lease_token, error="bad input", exit_code=2)

    assert (failed.status, failed.last_error, failed.exit_code) == ("failed", "bad input", 2)
    assert failed.finished_at is not None


def test_a_non_retryable_failure_fails_at_once(app):
    job = make_job("running", max_attempts=5)
    assert jobs.fail_job(job.id, job.lease_token, error="fatal", retryable=False).status == "failed"


def test_a_failure_records_the_step_it_failed_in(app):
    job = make_job("running", max_attempts=1)
    jobs.record_step(job.id, job.lease_token, name="transcode", event="started", attempt=1)

    jobs.fail_job(job.id, job.lease_token, error="codec missing")

    (attempt,) = jobs.attempts_of(job.id)
    assert (attempt.step, attempt.outcome, attempt.error) == ("transcode", "failed", "codec missing")


def test_force_start_of_a_failed_job_grants_one_more_attempt(app):
    job = make_job("running", max_attempts=1)
    jobs.fail_job(job.id, job.lease_token, error="boom")

    revived = jobs.force_start(job.id)

    assert (revived.status, revived.attempt, revived.max_attempts) == ("queued", 1, 2)
    (claimed,) = jobs.claim_jobs("w2", types=[job.type])
    assert claimed.attempt == 2


def test_force_start_twice_queues_the_job_once(app):
    job = make_job("failed")
    jobs.force_start(job.id)
    with pytest.raises(TransitionRefused, match="current status is queued"):
        jobs.force_start(job.id)
    assert [e[0] for e in events_of(job.id)].count("force_start") == 1


def test_an_interrupted_attempt_goes_back_to_queued_without_using_an_attempt(app):
    job = make_job("running", max_attempts=1)

    handed_back = jobs.fail_job(job.id, job.lease_token, error="worker shutting down", interrupted=True)

    assert handed_back.status == "queued" and handed_back.max_attempts == 2
    assert handed_back.run_after <= utcnow()
    assert jobs.attempts_of(job.id)[0].outcome == "interrupted"


def test_a_heartbeat_that_names_no_step_keeps_the_current_step(app):
    job = make_job("running")
    jobs.heartbeat(job.id, job.lease_token, current_step="download", progress=10)

    after = jobs.heartbeat(job.id, job.lease_token, progress=50)

    assert (after.current_step, after.progress) == ("download", 50)


def test_orphaning_respects_a_fresh_heartbeat(app):
    job = make_job("running")
    jobs.heartbeat(job.id, job.lease_token)

    with pytest.raises(TransitionRefused):
        jobs.orphan_job(job.id, cutoff=utcnow() - timedelta(seconds=30), reason="orphaned")

    assert jobs.get_job(job.id).status == "running"


def test_an_unknown_job_is_not_found(app):
    with pytest.raises(statuses.JobNotFound):
        jobs.cancel_job(424242)
