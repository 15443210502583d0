"""The health monitor's pass on real databases: what it settles, what it leaves alone.

Time moves forward by handing the pass a later `now` (or, for the one clock a
test cannot move that way, by dating a claim back in the store).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from webapp import jobs, monitor
from webapp.domain.statuses import LeaseLost
from webapp.domain.timeutil import isoformat, utcnow
from webapp.store.extensions import db
from webapp.store.models import Job, JobAttempt, JobEvent, MonitorPass, Worker

from tests.factories import make_job


def later(seconds: float):
    return utcnow() + timedelta(seconds=seconds)


def monitor_events(job_id: int) -> list[JobEvent]:
    return [event for event in jobs.events_of(job_id) if event.actor == "monitor"]


def running_job_of(worker_id: str, **spec) -> Job:
    job = make_job("queued", type=f"owned-by-{worker_id}", **spec)
    (claimed,) = jobs.claim_jobs(worker_id, types=[job.type])
    return jobs.start_job(job.id, claimed.lease_token)


# --- live jobs without heartbeats ----------------------------------------------


def test_a_running_job_silent_past_its_timeout_is_requeued_with_the_reason(app):
    job = make_job("running", max_attempts=3)
    beat = jobs.get_job(job.id).heartbeat_at

    result = monitor.run_pass(now=later(31))

    after = jobs.get_job(job.id)
    reason = f"orphaned: no heartbeat from worker factory-worker since {isoformat(beat)}"
    assert (after.status, after.last_error, after.lease_token) == ("queued", reason, None)
    assert result["orphaned"] == [job.id] and result["requeued"] == [job.id]
    (event,) = monitor_events(job.id)
    assert (event.from_status, event.to_status, event.reason) == ("running", "queued", reason)
    assert jobs.attempts_of(job.id)[-1].outcome == "orphaned"


def test_an_orphaned_job_on_its_last_attempt_fails(app):
    job = make_job("running", max_attempts=1)

    result = monitor.run_pass(now=later(31))

    after = jobs.get_job(job.id)
    assert after.status == "failed"
    assert after.last_error.startswith("orphaned: no heartbeat from worker factory-worker since ")
    assert result["failed"] == [job.id]


def test_a_running_job_with_a_recent_heartbeat_is_left_alone(app):
    job = make_job("running")

    result = monitor.run_pass(now=later(10))

    assert jobs.get_job(job.id).status == "running"
    assert result["changed"] == 0 and monitor_events(job.id) == []


def test_a_types_own_timeout_replaces_the_default(app):
    app.config["JOBWARDEN_TYPE_TIMEOUTS"] = {"slow": 120}
    slow = make_job("running", type="slow")
    quick = make_job("running")

    monitor.run_pass(now=later(60))

    assert jobs.get_job(slow.id).status == "running"
    assert jobs.get_job(quick.id).status == "queued"


def test_a_claimed_job_whose_worker_went_silent_is_orphaned(app):
    job = make_job("claimed")

    result = monitor.run_pass(now=later(31))

    assert jobs.get_job(job.id).status == "queued"
    assert result["orphaned"] == [job.id]


def test_a_claimed_job_never_started_within_the_timeout_is_orphaned_though_it_heartbeats(app):
    job = make_job("claimed")
    claimed_at = utcnow() - timedelta(seconds=60)
    db.session.execute(update(Job).where(Job.id == job.id).values(claimed_at=claimed_at))
    db.session.commit()
    jobs.heartbeat(job.id, job.lease_token)

    result = monitor.run_pass()

    after = jobs.get_job(job.id)
    assert after.status == "queued"
    assert after.last_error == (
        f"orphaned: claimed by worker factory-worker at {isoformat(claimed_at)} and never started"
    )
    assert result["never_started"] == [job.id]


def test_a_running_job_claimed_long_ago_but_heartbeating_is_left_alone(app):
    job = make_job("running")
    db.session.execute(update(Job).where(Job.id == job.id).values(claimed_at=utcnow() - timedelta(hours=1)))
    db.session.commit()

    result = monitor.run_pass()

    assert jobs.get_job(job.id).status == "running" and result["changed"] == 0


def test_the_old_worker_is_fenced_off_once_its_job_is_orphaned(app):
    job = make_job("running")
    token = job.lease_token

    monitor.run_pass(now=later(31))

    with pytest.raises(LeaseLost) as lost:
        jobs.heartbeat(job.id, token)
    assert lost.value.status == "queued"


# --- late tier -----------------------------------------------------------------


def test_a_job_past_half_its_timeout_is_reported_late_and_left_alone(app):
    job = make_job("running")

    report = monitor.health_report(now=later(20))
    result = monitor.run_pass(now=later(20))

    assert [entry["id"] for entry in report["late_jobs"]] == [job.id]
    assert report["orphaned_jobs"] == [] and report["healthy"] is True
    assert result["late"] == [job.id] and result["changed"] == 0
    assert jobs.get_job(job.id).status == "running"


def test_a_job_past_its_timeout_is_reported_orphaned_before_the_pass_acts(app):
    job = make_job("running")

    report = monitor.health_report(now=later(31))

    (entry,) = report["orphaned_jobs"]
    assert entry["id"] == job.id and entry["reason"].startswith("orphaned: no heartbeat from worker")
    assert report["healthy"] is False
    assert jobs.get_job(job.id).status == "running"


# --- pending, cancellations, workers -------------------------------------------------


def test_a_job_stuck_in_pending_past_the_timeout_fails_with_the_reason(app):
    job = make_job("pending")
    created = jobs.get_job(job.id).created_at

    result = monitor.run_pass(now=later(3601))

    after = jobs.get_job(job.id)
    reason = f"stuck in pending since {isoformat(created)}"
    assert (after.status, after.last_error) == ("failed", reason)
    assert result["stale_pending"] == [job.id] and result["failed"] == [job.id]
    (event,) = monitor_events(job.id)
    assert (event.from_status, event.to_status, event.reason) == ("pending", "failed", reason)


def test_a_job_stuck_in_pending_is_queued_when_the_pending_action_is_queue(app):
    app.config["JOBWARDEN_PENDING_ACTION"] = "queue"
    job = make_job("pending")

    result = monitor.run_pass(now=later(3601))

    assert jobs.get_job(job.id).status == "queued"
    assert result["requeued"] == [job.id]
    (event,) = monitor_events(job.id)
    assert (event.from_status, event.to_status) == ("pending", "queued")
    assert event.reason.startswith("stuck in pending since ")


def test_a_pending_job_younger_than_the_timeout_stays_pending(app):
    job = make_job("pending")

    monitor.run_pass(now=later(3500))

    assert jobs.get_job(job.id).status == "pending"


def test_an_unconfirmed_cancellation_releases_the_lease_with_a_note(app):
    job = make_job("running")
    jobs.cancel_job(job.id, reason="not needed")

    result = monitor.run_pass(now=later(31))

    after = jobs.get_job(job.id)
    assert (after.status, after.lease_token) == ("cancelled", None)
    assert result["unconfirmed_cancellations"] == [job.id]
    (note,) = monitor_events(job.id)
    assert (note.kind, note.reason) == ("note", "worker factory-worker never confirmed the cancellation")


def test_a_fresh_cancellation_keeps_its_lease_until_the_timeout(app):
    job = make_job("running")
    jobs.cancel_job(job.id)

    monitor.run_pass(now=later(10))

    assert jobs.get_job(job.id).lease_token == job.lease_token


def test_a_worker_silent_past_the_timeout_is_marked_gone_and_its_job_orphaned(app):
    jobs.register_worker("w-dead", hostname="h", pid=1)
    job = running_job_of("w-dead")

    result = monitor.run_pass(now=later(31))

    assert db.session.get(Worker, "w-dead").state == "gone"
    assert result["gone_workers"] == ["w-dead"]
    after = jobs.get_job(job.id)
    assert after.status == "queued"
    assert after.last_error.startswith("orphaned: no heartbeat from worker w-dead since ")


def test_a_job_orphaned_and_its_silent_worker_marked_gone_are_one_commit(app, monkeypatch):
    """A reader between the two (the health page) saw the job orphaned and its worker alive."""
    app.config["JOBWARDEN_TYPE_TIMEOUTS"] = {"owned-by-w-quiet": 2}  # the job's timeout, not the worker's
    jobs.register_worker("w-quiet", hostname="h", pid=1)
    job = running_job_of("w-quiet", max_attempts=1)
    seen_elsewhere: list[str] = []
    mark_worker_gone = jobs.mark_worker_gone

    def marking(worker_id: str, *, cutoff):
        with db.engine.connect() as other:  # another connection: what any reader sees now
            seen_elsewhere.append(other.scalar(select(Job.status).where(Job.id == job.id)))
        return mark_worker_gone(worker_id, cutoff=cutoff)

    monkeypatch.setattr(jobs, "mark_worker_gone", marking)
    result = monitor.run_pass(now=later(5))

    assert seen_elsewhere == ["running"]  # the orphaning not yet committed on its own
    assert result["orphaned"] == [job.id] and result["gone_workers"] == ["w-quiet"]
    assert jobs.get_job(job.id).status == "failed" and db.session.get(Worker, "w-quiet").state == "gone"


def test_a_worker_that_heartbeats_stays_alive(app):
    jobs.register_worker("w-alive")

    result = monitor.run_pass(now=later(10))

    assert db.session.get(Worker, "w-alive").state == "alive" and result["gone_workers"] == []


# --- retention -------------------------------------------------------------------------


def test_retention_prunes_old_completed_and_cancelled_jobs_with_their_history(app):
    old = [make_job("completed"), make_job("cancelled")]
    failed = make_job("failed")
    old_ids = [job.id for job in old]

    result = monitor.run_pass(now=later(15 * 86400))

    remaining = set(db.session.scalars(select(Job.id)))
    assert remaining == {failed.id}
    assert result["pruned"] == 2
    orphans = db.session.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.job_id.in_(old_ids)))
    attempts = db.session.scalar(select(func.count()).select_from(JobAttempt).where(JobAttempt.job_id.in_(old_ids)))
    assert (orphans, attempts) == (0, 0)


def test_retention_keeps_jobs_that_finished_within_the_retention_days(app):
    job = make_job("completed")

    monitor.run_pass(now=later(13 * 86400))

    assert jobs.get_job(job.id).status == "completed"


def test_retention_prunes_in_bounded_batches_and_finishes_on_later_passes(app):
    app.config.update(JOBWARDEN_RETENTION_BATCH_SIZE=2, JOBWARDEN_RETENTION_MAX_BATCHES=2)
    for _ in range(7):
        make_job("completed")

    first = monitor.run_pass(now=later(15 * 86400))
    second = monitor.run_pass(now=later(15 * 86400))

    assert (first["pruned"], second["pruned"]) == (4, 3)
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


# --- passes ------------------------------------------------------------------------


def test_a_second_pass_changes_nothing_the_first_settled(app):
    make_job("running")
    make_job("pending")

    first = monitor.run_pass(now=later(3601))
    second = monitor.run_pass(now=later(3601))

    assert first["changed"] == 2 and second["changed"] == 0


def test_each_pass_is_recorded_with_its_timing_and_changes(app):
    job = make_job("running")

    result = monitor.run_pass(trigger="manual", now=later(31))

    record = db.session.scalars(select(MonitorPass)).one()
    assert (record.trigger, record.changes["orphaned"]) == ("manual", [job.id])
    assert record.duration_ms == result["duration_ms"] > 0
    assert record.instance == monitor.instance_name()


def test_the_health_report_shows_the_last_pass_and_estimates_the_next(app):
    app.config["JOBWARDEN_MONITOR_INTERVAL"] = 10.0
    make_job("running")
    monitor.run_pass(now=later(31))

    status = monitor.health_report()["monitor"]

    record = db.session.scalars(select(MonitorPass)).one()
    assert status["last_run"]["started_at"] == isoformat(record.started_at)
    assert status["last_run"]["changes"]["orphaned"] == 1
    assert status["next_run"] == isoformat(record.started_at + timedelta(seconds=10))
    assert (status["next_run_estimated"], status["overdue"]) == (True, False)


def test_the_health_report_calls_a_monitor_silent_for_two_intervals_overdue(app):
    app.config["JOBWARDEN_MONITOR_INTERVAL"] = 10.0
    monitor.run_pass()

    report = monitor.health_report(now=later(25))

    assert report["monitor"]["overdue"] is True and report["healthy"] is False


def test_the_health_report_counts_jobs_by_status_and_lists_workers(app):
    make_job("queued")
    make_job("pending")
    jobs.register_worker("w1", hostname="box", pid=42, types=["a"], concurrency=2)

    report = monitor.health_report(now=later(20))

    assert report["counts"]["queued"] == 1 and report["counts"]["pending"] == 1
    (worker,) = report["workers"]
    assert (worker["id"], worker["state"], worker["heartbeat"], worker["pid"]) == ("w1", "alive", "late", 42)
