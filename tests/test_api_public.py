"""The public JSON API through pytest-flask's client, on each database:
each endpoint's success and its error answers."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import event, text

from webapp import jobs
from webapp.jobs import queries
from webapp.store.extensions import db

from tests.factories import make_job


def status_of(job_id: int) -> str:
    db.session.expire_all()
    return jobs.get_job(job_id).status


def job_count() -> int:
    return len(jobs.list_jobs(jobs.JobFilter(), limit=500)[0])


# --- create ---------------------------------------------------------------------------


def test_creating_a_job_answers_201_with_the_queued_job(client):
    response = client.post("/api/jobs", json={"type": "video.encode", "payload": {"file": "a.mp4"}, "priority": 5})
    assert response.status_code == 201
    job = response.json
    assert (job["type"], job["status"], job["priority"], job["payload"]) == (
        "video.encode",
        "queued",
        5,
        {"file": "a.mp4"},
    )
    assert job["attempt"] == 0 and job["max_attempts"] == 3 and job["cancel_requested"] is False
    assert job["created_at"].endswith("Z")


def test_a_held_job_is_created_pending(client):
    assert client.post("/api/jobs", json={"type": "x", "hold": True}).json["status"] == "pending"


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "type"),
        ({"type": ""}, "type"),
        ({"type": 7}, "type"),
        ({"type": "x", "priority": "high"}, "priority"),
        ({"type": "x", "max_attempts": 0}, "max_attempts"),
        ({"type": "x", "timeout_s": -1}, "timeout_s"),
        ({"type": "x", "hold": "maybe"}, "hold"),
        ({"type": "x", "colour": "red"}, "colour"),
        ({"type": "x\x00y"}, "type"),
        ({"type": "x", "payload": {"k": "nul\x00"}}, "payload"),
        ({"type": "x", "priority": 10**30}, "priority"),
    ],
)
def test_a_bad_create_body_is_a_400_naming_the_field_and_stores_nothing(client, body, field):
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 400
    assert response.json["error"] == "invalid"
    assert response.json["field"] == field
    assert response.json["message"].startswith(f"{field}:")
    assert job_count() == 0


@pytest.mark.parametrize("raw", [b"{not json", b'{"type": NaN}', b"\xff\xfe", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_a_400(client, raw):
    response = client.post("/api/jobs", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json["field"] == "body"


def test_a_form_encoded_body_is_a_415(client):
    response = client.post("/api/jobs", data={"type": "x"})
    assert response.status_code == 415
    assert job_count() == 0


def test_a_body_over_the_configured_size_is_a_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/api/jobs", json={"type": "x", "payload": "a" * 2000})
    assert response.status_code == 413
    assert response.json["error"] == "too_large"
    assert job_count() == 0


# --- bulk create ----------------------------------------------------------------------


def test_bulk_create_answers_the_ids_in_order(client):
    response = client.post("/api/jobs/bulk", json={"jobs": [{"type": "a"}, {"type": "b", "hold": True}]})
    assert response.status_code == 201
    first, second = response.json["ids"]
    assert (jobs.get_job(first).type, jobs.get_job(second).status) == ("a", "pending")


def test_bulk_create_with_one_bad_entry_creates_nothing_and_names_its_index(client):
    response = client.post("/api/jobs/bulk", json={"jobs": [{"type": "a"}, {"type": "b"}, {"priority": 1}]})
    assert response.status_code == 400
    assert response.json["field"] == "jobs[2].type"
    assert job_count() == 0


def test_bulk_create_refuses_more_than_1000_jobs(client):
    response = client.post("/api/jobs/bulk", json={"jobs": [{"type": "a"}] * 1001})
    assert (response.status_code, response.json["field"]) == (400, "jobs")


# --- list -----------------------------------------------------------------------------


def test_the_list_filters_by_several_statuses_type_worker_and_text(client):
    queued = make_job("queued", type="mail.send")
    failed = make_job("failed", type="video.encode")
    running = make_job("running", type="video.encode")

    def ids(query):
        return [job["id"] for job in client.get(f"/api/jobs?{query}").json["jobs"]]

    assert ids("status=queued&status=failed") == [failed.id, queued.id]
    assert ids("type=video.encode") == [running.id, failed.id]
    assert ids("worker=factory-worker") == [running.id]
    assert ids("q=mail") == [queued.id]
    assert ids("q=factory") == [failed.id]  # its error: "factory"


def test_the_list_pages_with_a_cursor_without_gaps_or_repeats(client):
    created = [make_job("queued").id for _ in range(7)]
    seen, cursor = [], None
    while True:
        page = client.get(
            "/api/jobs",
            query_string={"limit": 3, "sort": "created_at", "order": "asc", **({"cursor": cursor} if cursor else {})},
        ).json
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == created


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=lost", "status[0]"),
        ("sort=colour", "sort"),
        ("order=up", "order"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
    ],
)
def test_a_bad_list_parameter_is_a_400_naming_it(client, query, field):
    response = client.get(f"/api/jobs?{query}")
    assert response.status_code == 400
    assert response.json["field"] == field


# --- one job, its events ------------------------------------------------------------------


def test_a_job_carries_its_queue_position_attempts_and_steps(client):
    ahead = make_job("queued", type="t")
    job = make_job("queued", type="t")
    answer = client.get(f"/api/jobs/{job.id}").json
    assert (answer["queue_position"], answer["attempts"], answer["steps"]) == (2, [], [])
    assert client.get(f"/api/jobs/{ahead.id}").json["queue_position"] == 1


def test_a_place_deep_in_a_backlog_is_counted_up_to_the_cap(client, monkeypatch):
    """Jobs ahead by priority and by age, each counted no further than the cap."""
    for module in (jobs, queries):  # the facade's name and the counting module's
        monkeypatch.setattr(module, "QUEUE_POSITION_CAP", 3)
    urgent = [make_job("queued", type="t", priority=5) for _ in range(2)]
    older = [make_job("queued", type="t") for _ in range(2)]
    last = make_job("queued", type="t")

    def place(job) -> tuple[int, int]:
        answer = client.get(f"/api/jobs/{job.id}").json
        return answer["queue_position"], answer["queue_position_cap"]

    assert [place(job) for job in (*urgent, *older, last)] == [(1, 3), (2, 3), (3, 3), (4, 3), (4, 3)]
    assert "#3+ in queue" in client.get(f"/jobs/{last.id}").get_data(as_text=True)
    assert "#3 in queue" in client.get(f"/jobs/{older[0].id}").get_data(as_text=True)


def test_a_failed_job_lists_its_attempt_with_worker_outcome_and_error(client):
    job = make_job("running")
    jobs.fail_job(job.id, job.lease_token, error="disk full", exit_code=3, output="last words", retryable=False)
    (attempt,) = client.get(f"/api/jobs/{job.id}").json["attempts"]
    assert (
        attempt["number"],
        attempt["worker_id"],
        attempt["outcome"],
        attempt["error"],
        attempt["exit_code"],
        attempt["output_tail"],
    ) == (1, "factory-worker", "failed", "disk full", 3, "last words")


def test_events_come_oldest_first_with_time_kind_and_actor(client):
    job = make_job("queued")
    client.post(f"/api/jobs/{job.id}/cancel", json={"reason": "not needed"})
    events = client.get(f"/api/jobs/{job.id}/events").json["events"]
    assert [(e["kind"], e["action"], e["actor"], e["to_status"]) for e in events] == [
        ("status", "create", "api", "queued"),
        ("status", "cancel", "api", "cancelled"),
    ]
    assert events[1]["reason"] == "not needed" and events[1]["at"].endswith("Z")


@pytest.mark.parametrize("path", ["/api/jobs/999", "/api/jobs/999/events", "/api/jobs/99999999999999999999"])
def test_an_unknown_job_is_a_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


# --- recovery actions -----------------------------------------------------------------------


def test_cancel_moves_a_running_job_to_cancelled_and_asks_the_worker_to_stop(client):
    job = make_job("running")
    answer = client.post(f"/api/jobs/{job.id}/cancel", json={}).json
    assert (answer["status"], answer["cancel_requested"]) == ("cancelled", True)


def test_force_start_twice_queues_once_and_then_answers_409_with_the_status(client):
    job = make_job("failed")
    assert client.post(f"/api/jobs/{job.id}/force-start", json={}).json["status"] == "queued"
    second = client.post(f"/api/jobs/{job.id}/force-start", json={})
    assert second.status_code == 409
    assert (second.json["error"], second.json["status"]) == ("conflict", "queued")
    assert [e.action for e in jobs.events_of(job.id)].count("force_start") == 1


def test_mark_failed_records_the_reason_as_the_error(client):
    job = make_job("queued")
    answer = client.post(f"/api/jobs/{job.id}/mark-failed", json={"reason": "bad input file"}).json
    assert (answer["status"], answer["last_error"]) == ("failed", "bad input file")


@pytest.mark.parametrize(
    "path, answered",
    [("/api/jobs/{id}/force-start", "queued"), ("/api/jobs/{id}/resume", "queued"), ("/api/jobs", "queued")],
)
def test_an_answer_reports_the_job_as_the_command_left_it_though_a_worker_claims_it_at_once(client, path, answered):
    """A worker woken by the commit can claim the job before the answer is written; the
    answer still says what the caller's command did (it used to reload and say `claimed`)."""
    failed = make_job("failed")

    def a_worker_claims_everything_queued(session):
        with db.engine.begin() as other:
            other.execute(text("UPDATE jobs SET status = 'claimed', worker_id = 'fast' WHERE status = 'queued'"))

    event.listen(db.session, "after_commit", a_worker_claims_everything_queued)
    try:
        response = client.post(path.format(id=failed.id), json={"type": "x"} if path == "/api/jobs" else {})
    finally:
        event.remove(db.session, "after_commit", a_worker_claims_everything_queued)
    assert response.status_code in (200, 201)
    assert response.json["status"] == answered
    assert status_of(response.json["id"]) == "claimed"  # the worker's claim happened, and is not hidden


@pytest.mark.parametrize("action", ["cancel", "mark-failed", "force-start"])
def test_an_action_on_a_completed_job_is_a_409_and_changes_nothing(client, action):
    job = make_job("completed")
    response = client.post(f"/api/jobs/{job.id}/{action}", json={})
    assert (response.status_code, response.json["status"]) == (409, "completed")
    assert status_of(job.id) == "completed"


def test_an_action_on_an_unknown_job_is_a_404(client):
    assert client.post("/api/jobs/4242/cancel", json={}).status_code == 404


# --- bulk actions -----------------------------------------------------------------------------


def test_a_bulk_action_by_ids_changes_what_it_can_and_skips_the_rest_with_why(client):
    queued, completed = make_job("queued"), make_job("completed")
    answer = client.post("/api/jobs/actions", json={"action": "cancel", "ids": [queued.id, completed.id, 999]}).json
    assert answer["changed"] == 1
    assert answer["skipped"] == [
        {"id": completed.id, "status": "completed", "reason": "already completed — nothing was done"},
        {"id": 999, "status": None, "reason": "not found"},
    ]


def test_a_bulk_action_by_filter_acts_on_the_matching_jobs(client):
    failed = [make_job("failed", type="mail.send") for _ in range(2)]
    other = make_job("failed", type="video.encode")
    answer = client.post("/api/jobs/actions", json={"action": "force-start", "filter": {"type": "mail.send"}}).json
    assert (answer["changed"], answer["skipped"]) == (2, [])
    assert [status_of(j.id) for j in failed] == ["queued", "queued"] and status_of(other.id) == "failed"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"action": "explode", "ids": [1]}, "action"),
        ({"action": "cancel"}, "body"),
        ({"action": "cancel", "ids": [1], "filter": {}}, "body"),
        ({"action": "cancel", "ids": list(range(1, 1002))}, "ids"),
        ({"action": "cancel", "ids": [0]}, "ids[0]"),
    ],
)
def test_a_bad_bulk_action_is_a_400(client, body, field):
    response = client.post("/api/jobs/actions", json=body)
    assert (response.status_code, response.json["field"]) == (400, field)


# --- health and cleanup -------------------------------------------------------------------------


def test_health_reports_counts_workers_and_the_monitor(client):
    make_job("queued")
    health = client.get("/api/health").json
    assert health["healthy"] is True
    assert health["counts"]["queued"] == 1
    assert health["orphaned_jobs"] == [] and health["stale_pending_jobs"] == []
    assert {"last_run", "next_run"} <= set(health["monitor"])


def test_cleanup_runs_a_monitor_pass_and_says_what_it_changed(app, client):
    app.config["JOBWARDEN_PENDING_TIMEOUT"] = 0.0
    stale = make_job("pending")
    answer = client.post("/api/admin/cleanup", json={}).json
    assert answer["skipped"] is False
    assert answer["stale_pending"] == [stale.id]
    assert status_of(stale.id) == "failed"


# --- operator credentials and read-only -----------------------------------------------------------


def basic(password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"operator:{password}".encode()).decode()}


def test_with_a_password_set_writes_need_it_and_reads_do_not(app, client):
    app.config["JOBWARDEN_ADMIN_PASSWORD"] = "s3cret"
    refused = client.post("/api/jobs", json={"type": "x"})
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
    assert client.post("/api/jobs", json={"type": "x"}, headers=basic("wrong")).status_code == 401
    assert client.post("/api/jobs", json={"type": "x"}, headers=basic("s3cret")).status_code == 201
    assert client.get("/api/jobs").status_code == 200


def test_the_dashboard_session_alone_does_not_authorize_api_writes(app, client):
    app.config["JOBWARDEN_ADMIN_PASSWORD"] = "s3cret"
    with client.session_transaction() as session:
        session["operator"] = True
    assert client.post("/api/jobs", json={"type": "x"}).status_code == 401


def test_a_read_only_deployment_refuses_every_public_write(app, client):
    job = make_job("queued")
    app.config["JOBWARDEN_READ_ONLY"] = True
    for path in ("/api/jobs", f"/api/jobs/{job.id}/cancel", "/api/admin/cleanup"):
        response = client.post(path, json={"type": "x"} if path == "/api/jobs" else {})
        assert (response.status_code, response.json["error"]) == (403, "read_only")
    assert status_of(job.id) == "queued" and job_count() == 1


# --- liveness and metrics ---------------------------------------------------------------------------


def test_healthz_answers_ok_when_the_database_answers(client):
    assert (client.get("/healthz").status_code, client.get("/healthz").json) == (200, {"status": "ok"})


def test_metrics_expose_jobs_by_status_and_transitions(client):
    make_job("queued")
    make_job("failed")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'jobwarden_jobs{status="queued"} 1.0' in text
    assert 'jobwarden_jobs{status="failed"} 1.0' in text
    assert 'jobwarden_transitions_total{action="fail",to_status="failed"}' in text
    assert "jobwarden_claim_latency_seconds_bucket" in text
    assert "jobwarden_orphans_reaped_total" in text


def test_an_unknown_api_route_is_a_json_404(client):
    response = client.get("/api/nothing-here")
    assert (response.status_code, response.json["error"]) == (404, "not_found")
