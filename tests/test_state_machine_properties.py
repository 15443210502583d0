"""Random sequences of store commands (hypothesis' stateful testing) against a
model of the contract's state machine, on each database. After every step:
the store agrees with the model, a completed job never changes, every status
change left exactly one event, and every claim opened exactly one attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select, text

from webapp import jobs
from webapp.domain.statuses import EDGES, LeaseLost, Status, TransitionRefused
from webapp.domain.timeutil import utcnow
from webapp.store.extensions import db
from webapp.store.models import JobAttempt, JobEvent

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

OPERATOR_MOVES = {  # command → the contract's transition
    "cancel": EDGES["cancel"],
    "mark_failed": EDGES["fail"],
    "force_start": EDGES["force_start"],
}


class StoreMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.status: dict[int, Status] = {}
        self.token: dict[int, str | None] = {}
        self.old_tokens: list[tuple[int, str]] = []
        self.status_changes = 0
        self.claims = 0
        self.waiting: set[int] = set()  # queued jobs created to run in an hour

    @initialize()
    def empty_store(self):
        tables = ", ".join(t.name for t in reversed(db.metadata.sorted_tables))
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(db.metadata.sorted_tables):
                db.session.execute(table.delete())
        db.session.commit()

    def _ids(self, *statuses: Status) -> list[int]:
        return sorted(i for i, s in self.status.items() if not statuses or s in statuses)

    @rule(hold=st.booleans(), max_attempts=st.integers(1, 3), later=st.booleans())
    def create(self, hold, max_attempts, later):
        delay = {"delay_s": 3600} if later and not hold else {}
        job = jobs.create_job(type="t", hold=hold, max_attempts=max_attempts, **delay)
        self.status[job.id] = Status.PENDING if hold else Status.QUEUED
        self.token[job.id] = None
        self.status_changes += 1
        if delay:
            self.waiting.add(job.id)

    @rule()
    def claim(self):
        claimable = set(self._ids(Status.QUEUED))
        claimed = jobs.claim_jobs("w", batch_size=1)
        if not claimed:
            # Everything queued is held back by a retry's backoff, or by the lease of an ended
            # attempt that may still live (one live copy: webapp.store.leases).
            assert all(held_back(jobs.get_job(i), utcnow()) for i in claimable)
            return
        (job,) = claimed
        assert job.id in claimable and job.id not in self.waiting
        self.status[job.id], self.token[job.id] = Status.CLAIMED, job.lease_token
        self.status_changes += 1
        self.claims += 1

    @precondition(lambda self: self._ids(Status.CLAIMED))
    @rule(data=st.data())
    def start(self, data):
        job_id = data.draw(st.sampled_from(self._ids(Status.CLAIMED)))
        jobs.start_job(job_id, self.token[job_id])
        self.status[job_id] = Status.RUNNING
        self.status_changes += 1

    @precondition(lambda self: self._ids(Status.RUNNING))
    @rule(data=st.data(), progress=st.floats(0, 100))
    def heartbeat(self, data, progress):
        job_id = data.draw(st.sampled_from(self._ids(Status.RUNNING)))
        assert jobs.heartbeat(job_id, self.token[job_id], progress=progress).progress == progress

    @precondition(lambda self: self._ids(Status.RUNNING))
    @rule(data=st.data())
    def complete(self, data):
        job_id = data.draw(st.sampled_from(self._ids(Status.RUNNING)))
        jobs.complete_job(job_id, self.token[job_id], result={"n": job_id})
        self._finish_lease(job_id, Status.COMPLETED)

    @precondition(lambda self: self._ids(Status.CLAIMED, Status.RUNNING))
    @rule(data=st.data(), retryable=st.booleans())
    def fail(self, data, retryable):
        job_id = data.draw(st.sampled_from(self._ids(Status.CLAIMED, Status.RUNNING)))
        job = jobs.get_job(job_id)
        attempts_left = job.attempt < job.max_attempts
        jobs.fail_job(job_id, self.token[job_id], error="boom", retryable=retryable)
        self._finish_lease(job_id, Status.QUEUED if retryable and attempts_left else Status.FAILED)

    @precondition(lambda self: self._ids(Status.CLAIMED, Status.RUNNING))
    @rule(data=st.data())
    def orphan(self, data):
        job_id = data.draw(st.sampled_from(self._ids(Status.CLAIMED, Status.RUNNING)))
        job = jobs.get_job(job_id)
        attempts_left = job.attempt < job.max_attempts
        jobs.orphan_job(job_id, cutoff=utcnow() + timedelta(seconds=60), reason="orphaned: test")
        self._finish_lease(job_id, Status.QUEUED if attempts_left else Status.FAILED)

    @precondition(lambda self: self.status)
    @rule(data=st.data(), command=st.sampled_from(sorted(OPERATOR_MOVES)))
    def operator_action(self, data, command):
        job_id = data.draw(st.sampled_from(self._ids()))
        edge = OPERATOR_MOVES[command]
        before = jobs.get_job(job_id)
        snapshot = (before.status, before.attempt, before.updated_at)
        if self.status[job_id] in edge.sources:
            getattr(jobs, command if command != "cancel" else "cancel_job")(job_id, reason="test")
            self._finish_lease(job_id, edge.target)
            self.waiting.discard(job_id)
        else:
            with pytest.raises(TransitionRefused) as refused:
                getattr(jobs, command if command != "cancel" else "cancel_job")(job_id, reason="test")
            assert refused.value.status == self.status[job_id]
            db.session.expire_all()
            after = jobs.get_job(job_id)
            assert (after.status, after.attempt, after.updated_at) == snapshot

    @precondition(lambda self: self.status)
    @rule(data=st.data())
    def run_now(self, data):
        """Only a job waiting for its time is brought forward; any other is refused unchanged."""
        job_id = data.draw(st.sampled_from(self._ids()))
        before = jobs.get_job(job_id)
        snapshot = (before.status, before.attempt, before.run_after, before.updated_at)
        if job_id in self.waiting:
            moved = jobs.run_now(job_id, reason="test")
            assert (moved.status, moved.attempt) == (Status.QUEUED, before.attempt)
            assert moved.run_after <= utcnow() < snapshot[2]
            self.waiting.discard(job_id)
            self.status_changes += 1  # its event: queued → queued
        else:
            with pytest.raises(TransitionRefused) as refused:
                jobs.run_now(job_id, reason="test")
            assert refused.value.status == self.status[job_id]
            db.session.expire_all()
            after = jobs.get_job(job_id)
            assert (after.status, after.attempt, after.run_after, after.updated_at) == snapshot

    @precondition(lambda self: self.old_tokens)
    @rule(data=st.data(), command=st.sampled_from(["start", "heartbeat", "complete", "fail"]))
    def stale_token_is_refused(self, data, command):
        job_id, token = data.draw(st.sampled_from(self.old_tokens))
        if token == self.token.get(job_id):
            return
        calls = {
            "start": lambda: jobs.start_job(job_id, token),
            "heartbeat": lambda: jobs.heartbeat(job_id, token, progress=1),
            "complete": lambda: jobs.complete_job(job_id, token),
            "fail": lambda: jobs.fail_job(job_id, token, error="zombie"),
        }
        with pytest.raises(LeaseLost):
            calls[command]()

    def _finish_lease(self, job_id: int, target: Status) -> None:
        if self.token.get(job_id):
            self.old_tokens.append((job_id, self.token[job_id]))
        self.status[job_id], self.token[job_id] = target, None
        self.status_changes += 1

    @invariant()
    def the_store_agrees_with_the_model(self):
        db.session.expire_all()
        for job_id, status in self.status.items():
            assert jobs.get_job(job_id).status == status, job_id

    @invariant()
    def every_move_left_one_event_and_every_claim_one_attempt(self):
        events = db.session.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.kind == "status"))
        attempts = db.session.scalar(select(func.count()).select_from(JobAttempt))
        assert (events, attempts) == (self.status_changes, self.claims)

    @invariant()
    def a_completed_job_keeps_its_result(self):
        for job_id in self._ids(Status.COMPLETED):
            assert jobs.get_job(job_id).result == {"n": job_id}


def test_random_command_sequences_keep_every_invariant(app):
    app.config["JOBWARDEN_RETRY_BASE_S"] = 0.0  # retried jobs are claimable at once
    StoreMachine.TestCase.settings = settings(
        max_examples=25,
        stateful_step_count=30,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    StoreMachine.TestCase().runTest()


def held_back(job, now) -> bool:
    return job.run_after > now or (job.lease_expires_at is not None and job.lease_expires_at > now)
