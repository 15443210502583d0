"""Leases in the store (webapp.store.leases), on both databases: the claim grants one and a heartbeat
renews it; an attempt ended by an operator or the monitor keeps it, so the job is `stopping`
and the claim skips it until its worker confirms the stop or the lease runs out. A confirmation
taken by one server wakes a claim waiting in another at once, not when the old lease runs out."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import make_url

from webapp import jobs
from webapp.domain.log_lines import prefix
from webapp.domain.timeutil import utcnow
from webapp.store import wakeup
from webapp.store.extensions import db
from webapp.store.models import Job
from webapp.worker.protocol import WorkerClient

from tests.conftest import INTERNAL_KEY, postgresql_only
from tests.factories import make_job
from tests.support.claimer import start_waiting_claim
from tests.support.server import running_server

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}


def internal(client, path: str, **body):
    return client.post(f"/api/internal{path}", json=body, headers=KEY)


def running_job(client, worker: str = "w1") -> dict:
    (job,) = internal(client, "/jobs/claim", worker_id=worker).json["jobs"]
    assert internal(client, f"/jobs/{job['id']}/start", lease_token=job["lease_token"]).status_code == 200
    return job


def test_the_claim_says_how_long_the_lease_lasts_and_a_heartbeat_renews_it(app, client):
    make_job("queued", type="demo")
    job = running_job(client)
    assert job["lease_s"] == app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"]
    granted = db.session.get(Job, job["id"]).lease_expires_at
    internal(client, f"/jobs/{job['id']}/heartbeat", lease_token=job["lease_token"])
    db.session.expire_all()
    assert db.session.get(Job, job["id"]).lease_expires_at > granted


def test_a_types_own_timeout_is_its_lease(app, client):
    app.config["JOBWARDEN_TYPE_TIMEOUTS"] = {"train": 120}
    make_job("queued", type="train")
    job = running_job(client)
    assert job["lease_s"] == 120
    assert db.session.get(Job, job["id"]).lease_expires_at - utcnow() > timedelta(seconds=100)


@pytest.mark.parametrize(
    ("ending", "recovery"),
    [
        (jobs.cancel_job, jobs.force_start),
        (jobs.mark_failed, jobs.resume_job),
        (jobs.mark_failed, jobs.restart_job),
    ],
)
def test_a_job_whose_ended_attempt_may_live_is_not_claimable_until_its_worker_confirms(client, ending, recovery):
    make_job("queued", type="demo", max_attempts=3)
    job = running_job(client)
    ending(job["id"])
    recovery(job["id"])
    shown = client.get(f"/api/jobs/{job['id']}").json
    assert shown["status"] == "queued" and shown["stopping"]["attempt"] == 1
    assert internal(client, "/jobs/claim", worker_id="w2").json["jobs"] == []

    confirmed = internal(client, f"/jobs/{job['id']}/stopped", lease_token=job["lease_token"], attempt=1)
    assert confirmed.json == {"ok": True}
    assert client.get(f"/api/jobs/{job['id']}").json["stopping"] is None
    last = client.get(f"/api/jobs/{job['id']}/events").json["events"][-1]
    assert (last["kind"], last["action"], last["attempt"]) == ("note", "lease_released", 1)
    (again,) = internal(client, "/jobs/claim", worker_id="w2").json["jobs"]
    assert (again["id"], again["attempt"]) == (job["id"], 2)


@postgresql_only
def test_a_released_lease_notifies_the_claims_that_take_the_job_s_kind(app, client, postgres_url):
    """The releasing statement's own notification names the job's type and queue, so every other
    process wakes one claim that takes it, not every waiting claim."""
    make_job("queued", type="demo", queue="gpu", max_attempts=3)
    job = running_job(client)
    jobs.mark_failed(job["id"])
    jobs.resume_job(job["id"])
    conninfo = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as listening:
        listening.execute(f"LISTEN {wakeup.CHANNEL}")
        internal(client, f"/jobs/{job['id']}/stopped", lease_token=job["lease_token"], attempt=1)
        (notification,) = listening.notifies(timeout=10, stop_after=1)
    assert wakeup._kinds_of(notification.payload)[1] == {("demo", "gpu"): 1}


def test_a_lease_that_ran_out_frees_the_job_without_a_confirmation(client):
    make_job("queued", type="demo", max_attempts=3)
    job = running_job(client)
    jobs.mark_failed(job["id"])
    jobs.force_start(job["id"])
    db.session.execute(db.update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert client.get(f"/api/jobs/{job['id']}").json["stopping"] is None
    (again,) = internal(client, "/jobs/claim", worker_id="w2").json["jobs"]
    assert again["id"] == job["id"]


def test_an_old_attempts_confirmation_cannot_free_a_later_one(client):
    make_job("queued", type="demo", max_attempts=3)
    job = running_job(client)
    jobs.cancel_job(job["id"])
    internal(client, f"/jobs/{job['id']}/stopped", lease_token=job["lease_token"], attempt=1)
    jobs.force_start(job["id"])
    second = running_job(client, "w2")
    jobs.cancel_job(job["id"])
    jobs.force_start(job["id"])
    late = internal(client, f"/jobs/{job['id']}/stopped", lease_token=job["lease_token"], attempt=1)
    assert (late.status_code, late.json["error"]) == (409, "lease_lost")
    assert client.get(f"/api/jobs/{job['id']}").json["stopping"]["attempt"] == second["attempt"] == 2


def test_a_job_marked_failed_while_running_has_a_final_log_once_its_worker_confirms(client):
    """The operator's "mark failed" keeps the lease, token and all, while the process may run
    and write. Before, the worker's confirmation released the lease's clock only: the token
    stayed, and the failed job's log read as still being written, for good."""
    make_job("queued", type="demo", max_attempts=1)
    job = running_job(client)
    jobs.mark_failed(job["id"], reason="operator gave up on it")
    assert client.get(f"/api/jobs/{job['id']}/log").json["final"] is False  # its process may still write
    internal(client, f"/jobs/{job['id']}/stopped", lease_token=job["lease_token"], attempt=1)
    assert client.get(f"/api/jobs/{job['id']}/log").json["final"] is True
    assert client.get(f"/api/jobs/{job['id']}").json["status"] == "failed"


def test_a_job_marked_failed_whose_worker_never_confirms_has_a_final_log_once_its_lease_ran_out(client):
    """Its worker died, or froze, before it could confirm: once the lease has run out no copy of
    the attempt lives, so its log is final and a piece sent under the old token is refused.
    Before, the log read as being written for good."""
    make_job("queued", type="demo", max_attempts=1)
    job = running_job(client)
    jobs.mark_failed(job["id"], reason="its worker froze")
    piece = {"lease_token": job["lease_token"], "offset": 0, "text": f"{prefix('out')}written while the lease ran\n"}
    assert internal(client, f"/jobs/{job['id']}/log", **piece).json["stored"] is True
    db.session.execute(db.update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert client.get(f"/api/jobs/{job['id']}/log").json["final"] is True
    late = {**piece, "offset": len(piece["text"].encode()), "text": f"{prefix('out')}a zombie's line\n"}
    assert internal(client, f"/jobs/{job['id']}/log", **late).json["stored"] is False
    assert "zombie" not in client.get(f"/api/jobs/{job['id']}/log").json["text"]


def test_a_job_that_failed_holding_its_token_before_this_release_has_a_final_log(client):
    """Stores written before a worker's fail report dropped its token hold failed jobs with a
    token and no lease: their logs are final."""
    make_job("queued", type="demo", max_attempts=1)
    job = running_job(client)
    internal(client, f"/jobs/{job['id']}/fail", lease_token=job["lease_token"], error="boom", retryable=False)
    db.session.execute(db.update(Job).values(lease_token=job["lease_token"], lease_expires_at=None))
    db.session.commit()
    assert client.get(f"/api/jobs/{job['id']}/log").json["final"] is True


def test_a_cancelled_jobs_confirmation_is_still_noted_with_the_lease_released(client):
    make_job("queued", type="demo", max_attempts=1)
    job = running_job(client)
    jobs.cancel_job(job["id"])
    internal(client, f"/jobs/{job['id']}/stopped", lease_token=job["lease_token"], attempt=1)
    events = client.get(f"/api/jobs/{job['id']}/events").json["events"]
    assert any(e["kind"] == "note" and e["action"] == "cancel_confirmed" for e in events), events
    assert client.get(f"/api/jobs/{job['id']}/log").json["final"] is True


def test_the_worker_s_own_outcome_releases_the_lease_at_once(client):
    make_job("queued", type="demo", max_attempts=3)
    job = running_job(client)
    internal(client, f"/jobs/{job['id']}/fail", lease_token=job["lease_token"], error="boom", retryable=True)
    db.session.execute(db.update(Job).values(run_after=utcnow()))
    db.session.commit()
    assert client.get(f"/api/jobs/{job['id']}").json["stopping"] is None
    (again,) = internal(client, "/jobs/claim", worker_id="w2").json["jobs"]
    assert again["attempt"] == 2


def test_the_job_page_shows_stopping_with_the_deadline(client):
    make_job("queued", type="demo", max_attempts=3)
    job = running_job(client)
    jobs.cancel_job(job["id"])
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert 'data-testid="stopping"' in page and "attempt 1 may still be running" in page
    internal(client, f"/jobs/{job['id']}/stopped", lease_token=job["lease_token"], attempt=1)
    assert 'data-testid="stopping"' not in client.get(f"/jobs/{job['id']}").get_data(as_text=True)


CLAIM_WAIT_S = 20.0  # well inside the old attempt's lease (JOBWARDEN_HEARTBEAT_TIMEOUT, 30 s)


@pytest.mark.slow
def test_a_lease_released_through_one_replica_wakes_a_claim_waiting_in_another(app, database_url, tmp_path):
    """An operator resumes a job whose old attempt may still live; its zombie worker's report is
    refused, it stops and confirms through one replica, while an idle worker's claim waits in the
    other. The job is claimable from that commit on: the claim takes it at once. On SQLite the
    other replica's watcher used to find no newly queued job in that commit, and the claim slept
    until the old lease ran out or its own wait ended (20 s)."""
    with (
        running_server(database_url, tmp_path / "a.log") as replica_a,
        running_server(database_url, tmp_path / "b.log") as replica_b,
    ):
        through_a = WorkerClient(replica_a.url, internal_key=INTERNAL_KEY, timeout=30)
        through_b = WorkerClient(replica_b.url, internal_key=INTERNAL_KEY, timeout=30)
        job_id = jobs.create_job(type="demo.noop", max_attempts=3).id
        (zombie,) = through_a.claim("w1", ["demo.noop"], start=True)
        jobs.mark_failed(job_id)
        jobs.resume_job(job_id)  # queued, but attempt 1 may still be running: `stopping`
        waiting, answers = start_waiting_claim(through_a, CLAIM_WAIT_S, worker_id="w2")
        time.sleep(1.0)  # the claim found the job stopping and waits
        assert not answers

        (refused,) = through_b.reports([{"kind": "heartbeat", "job_id": job_id, "lease_token": zombie["lease_token"]}])
        assert refused["error"] == "lease_lost"
        released = time.monotonic()
        (confirmed,) = through_b.reports(
            [{"kind": "stopped", "job_id": job_id, "lease_token": zombie["lease_token"], "attempt": 1}]
        )
        assert confirmed["code"] == 200
        waiting.join(timeout=CLAIM_WAIT_S + 30)
        answered, claimed = answers[0]
        assert [(job["id"], job["attempt"]) for job in claimed] == [(job_id, 2)]
        assert answered - released < 2.0
