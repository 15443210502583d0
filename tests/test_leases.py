"""Leases in the store (webapp.store.leases), on both databases: the claim grants one and a heartbeat
renews it; an attempt ended by an operator or the monitor keeps it, so the job is `stopping`
and the claim skips it until its worker confirms the stop or the lease runs out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.store.extensions import db
from webapp.store.models import Job

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job

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
    (again,) = internal(client, "/jobs/claim", worker_id="w2").json["jobs"]
    assert (again["id"], again["attempt"]) == (job["id"], 2)


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
