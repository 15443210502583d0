"""The internal (worker) API through pytest-flask's client, on each database:
the bearer key, each call's answers, and lease tokens fencing off zombies."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy
from sqlalchemy.orm import Session

from benchmarks._support import statements_run
from webapp import jobs
from webapp.config import ConfigError
from webapp.domain.limits import ARGV_ITEM_MAX_CHARS, ARGV_MAX_ITEMS
from webapp.domain.timeutil import utcnow
from webapp.metrics import TRANSITIONS
from webapp.server.api import internal
from webapp.store import wakeup
from webapp.store.extensions import db
from webapp.store.models import Job, Worker

from tests.conftest import INTERNAL_KEY, postgresql_only, test_config
from tests.factories import make_job

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}
ROUTES = [
    "/jobs/claim",
    "/jobs/1/start",
    "/jobs/1/heartbeat",
    "/jobs/1/steps",
    "/jobs/1/complete",
    "/jobs/1/fail",
    "/jobs/1/stopped",
    "/workers/heartbeat",
    "/reports",
]


def call(client, path: str, **body):
    return client.post(f"/api/internal{path}", json=body, headers=KEY)


def claim(client, worker: str = "w1", **body) -> dict:
    (job,) = call(client, "/jobs/claim", worker_id=worker, **body).json["jobs"]
    return job


def running(client, worker: str = "w1") -> dict:
    job = claim(client, worker)
    assert call(client, f"/jobs/{job['id']}/start", lease_token=job["lease_token"]).status_code == 200
    return job


def fresh(job_id: int):
    db.session.expire_all()
    return jobs.get_job(job_id)


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong-key", f"Basic {INTERNAL_KEY}", "Bearer "])
def test_every_internal_route_is_401_without_the_right_key(client, path, header):
    headers = {"Authorization": header} if header else {}
    response = client.post(f"/api/internal{path}", json={}, headers=headers)
    assert (response.status_code, response.json["error"]) == (401, "unauthorized")


def test_the_app_refuses_to_start_without_a_key_outside_development(database_url):
    with pytest.raises(ConfigError, match="JOBWARDEN_INTERNAL_API_KEY is not set.*export"):
        from webapp import create_app

        create_app(test_config(database_url, JOBWARDEN_INTERNAL_API_KEY=None, JOBWARDEN_ENV="production"))


def test_claim_hands_out_jobs_with_a_lease_token_highest_priority_first(client):
    low = make_job("queued", priority=0)
    high = make_job("queued", priority=9)
    claimed = call(client, "/jobs/claim", worker_id="w1", batch_size=5).json["jobs"]
    assert [job["id"] for job in claimed] == [high.id, low.id]
    assert all(job["status"] == "claimed" and len(job["lease_token"]) >= 16 for job in claimed)
    assert claimed[0]["lease_token"] != claimed[1]["lease_token"]


def test_claim_takes_only_the_named_types_and_answers_empty_when_none_wait(client):
    make_job("queued", type="mail")
    assert call(client, "/jobs/claim", worker_id="w1", types=["video"]).json == {"jobs": []}
    assert claim(client, types=["mail"])["type"] == "mail"


def test_a_claim_that_starts_hands_out_running_jobs_with_both_events_in_order(client):
    first, second = make_job("queued"), make_job("queued")
    before = TRANSITIONS.labels("start", "running")._value.get()
    claimed = call(client, "/jobs/claim", worker_id="w1", batch_size=2, start=True).json["jobs"]
    assert [(job["id"], job["status"]) for job in claimed] == [(first.id, "running"), (second.id, "running")]
    for job in claimed:
        stored = fresh(job["id"])
        assert stored.started_at == stored.claimed_at is not None
        (attempt,) = jobs.attempts_of(job["id"])
        assert attempt.started_at == stored.started_at
        moves = [
            (e.action, e.from_status, e.to_status, e.actor) for e in jobs.events_of(job["id"]) if e.kind == "status"
        ]
        assert moves[-2:] == [("claim", "queued", "claimed", "worker:w1"), ("start", "claimed", "running", "worker:w1")]
        token = job["lease_token"]
        assert call(client, f"/jobs/{job['id']}/start", lease_token=token).status_code == 409  # started once
        assert call(client, f"/jobs/{job['id']}/complete", lease_token=token).status_code == 200
    assert TRANSITIONS.labels("start", "running")._value.get() == before + 2
    make_job("queued")
    assert claim(client)["status"] == "claimed"  # without `start`, as before


def test_a_heartbeat_stores_the_argv_of_a_command_its_claim_started(client):
    make_job("queued")
    job = claim(client, start=True)
    argv = ["ffmpeg", "-i", "in put.mp4"]
    assert call(client, f"/jobs/{job['id']}/heartbeat", lease_token=job["lease_token"], argv=argv).status_code == 200
    assert jobs.attempts_of(job["id"])[0].argv == argv


def test_start_then_heartbeats_record_progress_stage_and_keep_the_step_when_none_is_named(client):
    make_job("queued")
    job = running(client)
    token = job["lease_token"]
    call(client, f"/jobs/{job['id']}/heartbeat", lease_token=token, progress=10, stage="fetch", current_step="download")
    answer = call(client, f"/jobs/{job['id']}/heartbeat", lease_token=token, progress=40)
    assert answer.json == {"cancel_requested": False, "status": "running"}
    stored = fresh(job["id"])
    assert (stored.status, stored.progress, stored.stage, stored.current_step) == ("running", 40, "fetch", "download")


def test_a_heartbeat_stores_the_output_tail_on_the_attempt(client):
    make_job("queued")
    job = running(client)
    call(client, f"/jobs/{job['id']}/heartbeat", lease_token=job["lease_token"], output="line 1\nline 2\n")
    assert jobs.attempts_of(job["id"])[0].output_tail == "line 1\nline 2\n"


def test_steps_are_recorded_with_attempt_phase_and_error(client):
    make_job("queued")
    job = running(client)
    token = job["lease_token"]
    call(client, f"/jobs/{job['id']}/steps", lease_token=token, name="download", event="started", attempt=1)
    call(
        client,
        f"/jobs/{job['id']}/steps",
        lease_token=token,
        name="download",
        event="failed",
        attempt=1,
        phase="handler",
        error="404 from origin",
    )
    (step,) = jobs.steps_of(job["id"])
    assert (step["name"], step["status"], step["phase"], step["error"]) == (
        "download",
        "failed",
        "handler",
        "404 from origin",
    )


def test_a_step_report_sent_again_after_a_lost_answer_is_recorded_once(client):
    """A worker whose report timed out sends it again; the server may have stored it."""
    make_job("queued")
    job = running(client)
    steps_url, token = f"/jobs/{job['id']}/steps", job["lease_token"]
    for _ in range(2):
        assert call(client, steps_url, lease_token=token, name="upload", event="started", attempt=1).status_code == 200
        assert (
            call(
                client,
                steps_url,
                lease_token=token,
                name="upload",
                event="retrying",
                attempt=1,
                phase="run",
                error="timeout",
                step_attempt=2,
            ).status_code
            == 200
        )
    call(
        client,
        steps_url,
        lease_token=token,
        name="upload",
        event="retrying",
        attempt=1,
        phase="run",
        error="timeout",
        step_attempt=3,
    )
    for _ in range(2):
        call(client, steps_url, lease_token=token, name="upload", event="completed", attempt=1, result={"url": "u"})
    events = [(e.data["event"], e.data.get("step_attempt")) for e in jobs.events_of(job["id"]) if e.kind == "step"]
    assert events == [("started", None), ("retrying", 2), ("retrying", 3), ("completed", None)]


def test_complete_stores_the_result_and_exit_code(client):
    make_job("queued")
    job = running(client)
    response = call(
        client, f"/jobs/{job['id']}/complete", lease_token=job["lease_token"], result={"frames": 9}, exit_code=0
    )
    assert response.status_code == 200
    stored = fresh(job["id"])
    assert (stored.status, stored.result, stored.exit_code) == ("completed", {"frames": 9}, 0)


def test_a_retryable_failure_with_attempts_left_goes_back_to_queued_with_backoff(client):
    make_job("queued", max_attempts=2)
    job = running(client)
    call(client, f"/jobs/{job['id']}/fail", lease_token=job["lease_token"], error="timeout talking to S3", exit_code=1)
    stored = fresh(job["id"])
    assert (stored.status, stored.last_error, stored.attempt) == ("queued", "timeout talking to S3", 1)
    assert stored.run_after > utcnow()


def test_a_failure_with_no_attempts_left_fails_the_job(client):
    make_job("queued", max_attempts=1)
    job = running(client)
    call(client, f"/jobs/{job['id']}/fail", lease_token=job["lease_token"], error="boom", exit_code=2)
    assert (fresh(job["id"]).status, fresh(job["id"]).exit_code) == ("failed", 2)


def test_an_interrupted_attempt_is_handed_back_without_using_up_an_attempt(client):
    make_job("queued", max_attempts=1)
    job = running(client)
    call(client, f"/jobs/{job['id']}/fail", lease_token=job["lease_token"], error="worker shut down", interrupted=True)
    stored = fresh(job["id"])
    assert stored.status == "queued" and stored.max_attempts == 2
    assert jobs.attempts_of(job["id"])[0].outcome == "interrupted"


def test_a_heartbeat_after_cancel_answers_lease_lost_with_the_status(client):
    make_job("queued")
    job = running(client)
    jobs.cancel_job(job["id"])
    response = call(client, f"/jobs/{job['id']}/heartbeat", lease_token=job["lease_token"])
    assert response.status_code == 409
    assert (response.json["error"], response.json["status"]) == ("lease_lost", "cancelled")


@pytest.mark.parametrize(
    "path, body",
    [
        ("start", {}),
        ("heartbeat", {"progress": 5}),
        ("steps", {"name": "s", "event": "started"}),
        ("complete", {"result": 1}),
        ("fail", {"error": "x"}),
    ],
)
def test_a_stale_lease_token_is_refused_and_changes_nothing(client, path, body):
    make_job("queued")
    job = claim(client)
    response = call(client, f"/jobs/{job['id']}/{path}", lease_token="not-the-token", **body)
    assert (response.status_code, response.json["error"], response.json["status"]) == (409, "lease_lost", "claimed")
    stored = fresh(job["id"])
    assert (stored.status, stored.progress, stored.lease_token) == ("claimed", None, job["lease_token"])


def test_a_zombie_whose_job_was_reaped_and_reclaimed_cannot_overwrite_the_new_attempt(client):
    make_job("queued", max_attempts=3)
    zombie = running(client, "zombie")
    jobs.orphan_job(zombie["id"], cutoff=utcnow() + timedelta(seconds=1), reason="orphaned: test")
    # The lease the zombie was granted runs out too (webapp.store.leases): the job may run again.
    db.session.execute(db.update(Job).values(run_after=utcnow(), lease_expires_at=utcnow()))
    db.session.commit()
    successor = running(client, "successor")
    assert successor["id"] == zombie["id"]
    token = successor["lease_token"]
    call(client, f"/jobs/{successor['id']}/complete", lease_token=token, result={"by": "successor"})
    for path, body in [("complete", {"result": {"by": "zombie"}}), ("fail", {"error": "zombie"}), ("heartbeat", {})]:
        response = call(client, f"/jobs/{zombie['id']}/{path}", lease_token=zombie["lease_token"], **body)
        assert (response.status_code, response.json["error"]) == (409, "lease_lost")
    stored = fresh(zombie["id"])
    assert (stored.status, stored.result, stored.worker_id) == ("completed", {"by": "successor"}, "successor")
    assert [a.outcome for a in jobs.attempts_of(zombie["id"])] == ["orphaned", "completed"]


def reports(client, *items):
    return client.post("/api/internal/reports", json={"items": list(items)}, headers=KEY)


@pytest.fixture(autouse=True)
def whole_batches(monkeypatch):
    """Each item of the batch applied, however slow the shared machine: the answers are what is
    checked here; cutting a batch short is tests/test_report_turns.py's."""
    monkeypatch.setattr(internal, "REPORT_BATCH_BUDGET_S", 60.0)


def test_a_batch_of_reports_applies_each_item_on_its_own_and_answers_each_in_order(client):
    for _ in range(4):
        make_job("queued")
    first, second, third, fourth = call(client, "/jobs/claim", worker_id="w1", batch_size=4).json["jobs"]
    fourth_started = call(client, f"/jobs/{fourth['id']}/start", lease_token=fourth["lease_token"])
    assert fourth_started.status_code == 200
    jobs.cancel_job(fourth["id"])
    response = reports(
        client,
        {"kind": "start", "job_id": first["id"], "lease_token": first["lease_token"]},
        {"kind": "heartbeat", "job_id": first["id"], "lease_token": first["lease_token"], "progress": 40},
        {"kind": "start", "job_id": second["id"], "lease_token": "stale-token"},
        {"kind": "start", "job_id": third["id"], "lease_token": third["lease_token"], "bogus": 1},
        {"kind": "heartbeat", "job_id": fourth["id"], "lease_token": fourth["lease_token"]},
        {"kind": "complete", "job_id": 999_999, "lease_token": "t"},
        {"kind": "retire", "job_id": third["id"], "lease_token": third["lease_token"]},
        {"kind": "fail", "job_id": third["id"], "lease_token": third["lease_token"]},
        {"kind": "step", "job_id": first["id"], "lease_token": first["lease_token"], "name": "s", "event": "started"},
        {"kind": "complete", "job_id": first["id"], "lease_token": first["lease_token"], "result": {"n": 1}},
    )
    assert response.status_code == 200
    results = response.json["results"]
    assert results[0] == {"code": 200, "ok": True}
    assert results[1] == {"code": 200, "cancel_requested": False, "status": "running"}
    assert (results[2]["code"], results[2]["error"], results[2]["status"]) == (409, "lease_lost", "claimed")
    assert (results[3]["code"], results[3]["field"]) == (400, "items[3].bogus")
    assert (results[4]["code"], results[4]["error"], results[4]["status"]) == (409, "lease_lost", "cancelled")
    assert (results[5]["code"], results[5]["error"]) == (404, "not_found")
    assert (results[6]["code"], results[6]["field"]) == (400, "items[6].kind")
    assert (results[7]["code"], results[7]["field"]) == (400, "items[7].error")
    assert results[8:] == [{"code": 200, "ok": True}] * 2
    assert (fresh(first["id"]).status, fresh(first["id"]).result) == ("completed", {"n": 1})
    assert [e.data["event"] for e in jobs.events_of(first["id"]) if e.kind == "step"] == ["started"]
    assert [fresh(j["id"]).status for j in (second, third, fourth)] == ["claimed", "claimed", "cancelled"]


def lifecycle_record(job_id: int) -> tuple:
    """What a job's starts and completes leave in the store, its times reduced to set or not."""
    job = fresh(job_id)
    (attempt,) = jobs.attempts_of(job_id)
    return (
        (job.status, job.result, job.exit_code, job.progress, job.lease_token, job.worker_id),
        (job.started_at is not None, job.heartbeat_at is not None, job.finished_at is not None),
        (attempt.outcome, attempt.exit_code, attempt.output_tail, attempt.argv),
        (attempt.started_at is not None, attempt.finished_at is not None),
        [(e.kind, e.action, e.actor, e.from_status, e.to_status, e.attempt) for e in jobs.events_of(job_id)],
    )


def test_starts_and_completes_sent_together_leave_each_job_as_its_single_reports_would(client):
    """Consecutive starts (and completes) of a batch are applied together: one statement on
    PostgreSQL. Each job ends exactly as it would have with its own reports, and a stale
    token, an unknown job or a job named twice still gets its own answer."""
    for _ in range(8):
        make_job("queued")
    claimed = call(client, "/jobs/claim", worker_id="w1", batch_size=8).json["jobs"]
    singles, together, stale = claimed[:3], claimed[3:6], claimed[6:]
    reports_of = [
        [
            {"kind": "start", "argv": ["ffmpeg", "-i", "<in>"]},
            {"kind": "complete", "result": {"n": 1}, "output": "ok\n"},
        ],
        [{"kind": "start"}, {"kind": "complete", "result": None, "exit_code": 3}],
        [{"kind": "start"}, {"kind": "complete", "result": [1, "two"], "exit_code": None}],
    ]
    for job, sent in zip(singles, reports_of, strict=True):
        for report in sent:
            body = {key: value for key, value in report.items() if key != "kind"}
            path = f"/jobs/{job['id']}/{report['kind']}"
            assert call(client, path, lease_token=job["lease_token"], **body).status_code == 200

    def item(job: dict, report: dict, token: str | None = None) -> dict:
        return {**report, "job_id": job["id"], "lease_token": token or job["lease_token"]}

    results = reports(
        client,
        *(item(job, sent[0]) for job, sent in zip(together, reports_of, strict=True)),
        item(stale[0], {"kind": "start"}, token="stale-token"),
        {"kind": "start", "job_id": 999_999, "lease_token": "t"},
        item(stale[1], {"kind": "start"}),
        item(stale[1], {"kind": "start"}),  # the same job again: applied after the first, refused
        *(item(job, sent[1]) for job, sent in zip(together, reports_of, strict=True)),
        item(stale[0], {"kind": "complete"}, token="stale-token"),
    ).json["results"]
    assert [r["code"] for r in results] == [200, 200, 200, 409, 404, 200, 409, 200, 200, 200, 409]
    assert (results[3]["error"], results[3]["status"]) == ("lease_lost", "claimed")
    assert (results[6]["error"], results[6]["status"]) == ("conflict", "running")
    assert (results[10]["error"], results[10]["status"]) == ("lease_lost", "claimed")
    for single, batched in zip(singles, together, strict=True):
        assert lifecycle_record(batched["id"]) == lifecycle_record(single["id"])
    assert [fresh(job["id"]).status for job in stale] == ["claimed", "running"]


@postgresql_only
def test_a_batch_of_starts_or_completes_is_one_statement_on_postgresql(app, client):
    for _ in range(10):
        make_job("queued")
    claimed = call(client, "/jobs/claim", worker_id="w1", batch_size=10).json["jobs"]
    with statements_run(db.engine) as statements:
        for kind in ("start", "complete"):
            items = [{"kind": kind, "job_id": j["id"], "lease_token": j["lease_token"]} for j in claimed]
            assert {r["code"] for r in reports(client, *items).json["results"]} == {200}
    moves = [statement for statement, _ in statements if "UPDATE jobs" in statement]
    assert len(moves) == 2, moves  # one per kind, not one per job
    assert [fresh(j["id"]).status for j in claimed] == ["completed"] * 10


# A valid body for each report kind, so its refusal below is the store's, not validation's.
REPORT_BODIES = {
    "start": {},
    "heartbeat": {"progress": 50},
    "step": {"name": "s", "event": "started"},
    "complete": {"result": {"n": 1}},
    "fail": {"error": "x"},
    "stopped": {},
}


def every_row() -> dict[str, list]:
    with db.engine.connect() as connection:
        return {
            table.name: sorted(map(tuple, connection.execute(table.select())), key=repr)
            for table in db.metadata.sorted_tables
        }


def test_every_report_kind_refuses_before_it_writes(client):
    """A batch applies its items without a savepoint each (jobs.unit_of_work): that is
    safe only while every kind refuses before its first write. A new kind must join
    REPORT_BODIES, and is then held to the rule here."""
    assert set(REPORT_BODIES) == set(internal.SINGLE)
    for _ in range(2):
        make_job("queued")
    claimed, live = call(client, "/jobs/claim", worker_id="w1", batch_size=2).json["jobs"]
    assert call(client, f"/jobs/{live['id']}/start", lease_token=live["lease_token"]).status_code == 200
    refused = []
    for kind, body in REPORT_BODIES.items():
        refused += [
            {"kind": kind, "job_id": live["id"], "lease_token": "stale-token", **body},
            {"kind": kind, "job_id": claimed["id"], "lease_token": "stale-token", **body},
            {"kind": kind, "job_id": 999_999, "lease_token": "t", **body},
        ]
    # The right lease, the wrong status: starting a running job, stopping one never cancelled.
    refused += [
        {"kind": "start", "job_id": live["id"], "lease_token": live["lease_token"]},
        {"kind": "stopped", "job_id": live["id"], "lease_token": live["lease_token"]},
    ]
    before = every_row()
    response = reports(client, *refused)
    assert response.status_code == 200
    assert [r["code"] for r in response.json["results"] if r["code"] == 200] == []
    assert every_row() == before


def transitions_counted(action: str, status: str) -> float:
    return TRANSITIONS.labels(action, status)._value.get()


def settled_generation(hub: wakeup.Hub) -> int:
    """The hub's generation once the setup's own wake-ups have passed (PostgreSQL's
    notifications reach the listener thread a moment after their commit)."""
    settled_at, generation, give_up = time.monotonic(), hub.generation, time.monotonic() + 5
    while time.monotonic() - settled_at < 0.3 and time.monotonic() < give_up:
        if hub.generation != generation:
            settled_at, generation = time.monotonic(), hub.generation
        time.sleep(0.02)
    return generation


def test_a_batch_wakes_waiting_claims_once_it_has_committed(client, monkeypatch):
    make_job("queued", max_attempts=1)
    job = running(client)
    hub, engine = wakeup.hub(), db.engine
    seen_at_wake = []
    wake = hub.wake

    def wake_and_look(kinds=None):
        with engine.connect() as connection:
            seen_at_wake.append(connection.execute(sqlalchemy.select(Job.status).where(Job.id == job["id"])).scalar())
        wake(kinds)

    settled_generation(hub)
    monkeypatch.setattr(hub, "wake", wake_and_look)
    results = reports(
        client,
        {"kind": "fail", "job_id": job["id"], "lease_token": job["lease_token"], "error": "bye", "interrupted": True},
        {"kind": "heartbeat", "job_id": job["id"], "lease_token": "stale-token"},
    ).json["results"]
    assert [r["code"] for r in results] == [200, 409]
    # A claim woken before the batch committed would find nothing and sleep on.
    assert seen_at_wake and set(seen_at_wake) == {"queued"}


def test_a_batch_whose_commit_fails_answers_503_and_stores_nothing(client):
    for _ in range(2):
        make_job("queued")
    first, second = call(client, "/jobs/claim", worker_id="w1", batch_size=2).json["jobs"]
    hub = wakeup.hub()
    seen, started = settled_generation(hub), transitions_counted("start", "running")

    def commit_fails(session):
        raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("the server closed the connection"))

    sqlalchemy.event.listen(Session, "before_commit", commit_fails)
    try:
        response = reports(
            client,
            {"kind": "start", "job_id": first["id"], "lease_token": first["lease_token"]},
            {"kind": "fail", "job_id": second["id"], "lease_token": second["lease_token"], "error": "x"},
        )
    finally:
        sqlalchemy.event.remove(Session, "before_commit", commit_fails)
    assert (response.status_code, response.json["error"]) == (503, "unavailable")
    assert [fresh(j["id"]).status for j in (first, second)] == ["claimed", "claimed"]
    assert (hub.generation, transitions_counted("start", "running")) == (seen, started)


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": {"kind": "start"}}, "items"),
        ({"items": [{"kind": "start", "job_id": 1, "lease_token": "t"}], "extra": 1}, "extra"),
    ],
)
def test_a_malformed_batch_envelope_is_a_400_naming_the_field(client, body, field):
    response = client.post("/api/internal/reports", json=body, headers=KEY)
    assert (response.status_code, response.json["field"]) == (400, field)


def test_a_zombie_s_batched_reports_are_fenced_item_by_item(client):
    make_job("queued", max_attempts=3)
    zombie = running(client, "zombie")
    jobs.orphan_job(zombie["id"], cutoff=utcnow() + timedelta(seconds=1), reason="orphaned: test")
    db.session.execute(db.update(Job).values(run_after=utcnow(), lease_expires_at=utcnow()))  # the lease ran out too
    db.session.commit()
    successor = running(client, "successor")
    stale = {"job_id": zombie["id"], "lease_token": zombie["lease_token"]}
    current = {"job_id": successor["id"], "lease_token": successor["lease_token"]}
    results = reports(
        client,
        {"kind": "heartbeat", **stale, "progress": 99},
        {"kind": "complete", **stale, "result": {"by": "zombie"}},
        {"kind": "heartbeat", **current, "progress": 10},
    ).json["results"]
    assert [(r["code"], r.get("error")) for r in results] == [(409, "lease_lost"), (409, "lease_lost"), (200, None)]
    stored = fresh(zombie["id"])
    assert (stored.status, stored.progress, stored.worker_id) == ("running", 10, "successor")


def test_a_worker_heartbeat_registers_and_refreshes_the_worker(client):
    body = dict(worker_id="gpu-1", hostname="box", pid=42, types=["train"], concurrency=2)
    assert call(client, "/workers/heartbeat", **body).json == {"ok": True, "gone": False}
    first_seen = db.session.get(Worker, "gpu-1").last_seen_at
    call(client, "/workers/heartbeat", **dict(body, pid=43))
    db.session.expire_all()
    worker = db.session.get(Worker, "gpu-1")
    assert (worker.pid, worker.types, worker.state) == (43, ["train"], "alive")
    assert worker.last_seen_at >= first_seen


def test_idle_workers_heartbeating_cost_the_database_no_statement_until_their_rows_are_due(app, client):
    idle = [dict(worker_id=f"idle-{n}", hostname="box", pid=n, types=["t"], concurrency=1) for n in range(20)]
    for body in idle:
        call(client, "/workers/heartbeat", **body)
    statements: list[str] = []

    def count(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(db.engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            assert all(call(client, "/workers/heartbeat", **body).status_code == 200 for body in idle)
        assert statements == []
        changed = call(client, "/workers/heartbeat", **dict(idle[0], concurrency=4))  # a change is written at once
        assert changed.status_code == 200 and statements
        db.session.expire_all()
        first_seen = db.session.get(Worker, "idle-1").last_seen_at
        app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"] = 0.4  # rows are due again after 0.1 s
        time.sleep(0.15)
        call(client, "/workers/heartbeat", **idle[1])
    finally:
        sqlalchemy.event.remove(db.engine, "before_cursor_execute", count)
    db.session.expire_all()
    assert db.session.get(Worker, "idle-0").concurrency == 4
    assert db.session.get(Worker, "idle-1").last_seen_at > first_seen


def test_many_idle_workers_cost_a_server_a_few_writes_per_refresh_period_not_one_each(app, client):
    """Refreshes are grouped: one UPDATE for every row past half its period. A worker that
    falls silent is not kept alive by the others: its row keeps its last heartbeat's time."""
    # Rows are refreshed every quarter of the timeout: a round of 30 heartbeats must take less
    # under a loaded CI machine, or a worker looks silent in between (a full run showed 0.5 s
    # too short, and once 1.5 s: 30 workers forgotten and registered again, one write each).
    app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"] = 12.0
    refresh_s = 12.0 / 4
    idle = [dict(worker_id=f"idle-{n}", hostname="box", pid=n, types=["t"], concurrency=1) for n in range(30)]
    for body in idle:
        call(client, "/workers/heartbeat", **body)
    call(client, "/workers/heartbeat", worker_id="quiet", types=["t"])
    quiet_last_heard = utcnow()
    writes: list[str] = []

    def count(_connection, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "INSERT")):
            writes.append(statement)

    sqlalchemy.event.listen(db.engine, "before_cursor_execute", count)
    began = time.monotonic()
    try:
        while time.monotonic() - began < 3 * refresh_s:  # three refresh periods
            assert all(call(client, "/workers/heartbeat", **body).status_code == 200 for body in idle)
    finally:
        sqlalchemy.event.remove(db.engine, "before_cursor_execute", count)
    assert 1 <= len(writes) <= 2 * 3 + 2  # one each would be 30 per period, 90 in all
    db.session.expire_all()
    rows = {worker.id: worker.last_seen_at for worker in db.session.scalars(sqlalchemy.select(Worker))}
    assert rows["quiet"] <= quiet_last_heard
    assert all(utcnow() - rows[body["worker_id"]] < timedelta(seconds=2 * refresh_s) for body in idle)


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/jobs/claim", {}, "worker_id"),
        ("/jobs/claim", {"worker_id": "w", "batch_size": 0}, "batch_size"),
        ("/jobs/1/heartbeat", {"lease_token": "t", "progress": 101}, "progress"),
        ("/jobs/1/steps", {"lease_token": "t", "name": "s", "event": "paused"}, "event"),
        ("/jobs/1/fail", {"lease_token": "t"}, "error"),
        ("/jobs/1/complete", {"lease_token": "t", "exit_code": "zero"}, "exit_code"),
        ("/workers/heartbeat", {"worker_id": "w", "pid": -1}, "pid"),
        ("/jobs/1/start", {"lease_token": "t", "argv": "rm -rf /"}, "argv"),
        ("/jobs/1/start", {"lease_token": "t", "argv": []}, "argv"),
        ("/jobs/1/start", {"lease_token": "t", "argv": ["x"] * (ARGV_MAX_ITEMS + 1)}, "argv"),
        ("/jobs/1/start", {"lease_token": "t", "argv": ["ok", "x" * (ARGV_ITEM_MAX_CHARS + 1)]}, "argv[1]"),
        ("/jobs/1/start", {"lease_token": "t", "argv": ["ok", 7]}, "argv[1]"),
        ("/jobs/1/start", {"lease_token": "t", "argv": ["a\x00b"]}, "argv[0]"),
        ("/jobs/1/heartbeat", {"lease_token": "t", "argv": []}, "argv"),
        ("/jobs/claim", {"worker_id": "w", "start": "yes please"}, "start"),
    ],
)
def test_a_bad_worker_body_is_a_400_naming_the_field(client, path, body, field):
    response = call(client, path, **body)
    assert (response.status_code, response.json["field"]) == (400, field)


def test_the_start_report_stores_a_commands_argv_on_its_attempt(client):
    make_job("queued")
    job = claim(client)
    argv = ["ffmpeg", "-i", "in put.mp4", "<b>"]
    assert call(client, f"/jobs/{job['id']}/start", lease_token=job["lease_token"], argv=argv).status_code == 200
    (attempt,) = client.get(f"/api/jobs/{job['id']}").json["attempts"]
    assert attempt["argv"] == argv


def test_nul_bytes_in_worker_output_are_kept_as_replacement_characters(client):
    make_job("queued")
    job = running(client)
    call(client, f"/jobs/{job['id']}/complete", lease_token=job["lease_token"], output="a\x00b")
    assert jobs.attempts_of(job["id"])[0].output_tail == "a\ufffdb"


def test_first_heartbeats_of_one_worker_racing_each_other_all_succeed(app):
    import threading

    errors: list[BaseException] = []

    def beat(worker_id: str, barrier: threading.Barrier) -> None:
        with app.app_context():
            barrier.wait()
            try:
                jobs.register_worker(worker_id, hostname="box", pid=1)
            except BaseException as error:  # collected: the assertion below names it
                errors.append(error)
            finally:
                db.session.remove()

    for round_number in range(10):
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=beat, args=(f"racer-{round_number}", barrier)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert db.session.query(Worker).count() == 10
