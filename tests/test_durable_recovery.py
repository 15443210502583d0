"""Resume and restart from the dashboard, the bulk actions, the CLI and the OpenAPI
document, and how the job page shows replayed steps and the checkpoint."""

from __future__ import annotations

import json

from webapp import jobs
from webapp.jobs import steps
from webapp.store.models import Job

from tests.factories import make_job
from tests.test_client import jobwarden
from tests.test_dashboard import buttons_in, post_action, text_of


def failed_in_publish(**spec) -> Job:
    """Attempt 1 completed fetch (result stored), took a checkpoint, and failed in publish."""
    job = make_job("running", max_attempts=1, **spec)
    token = job.lease_token
    for name in ("fetch", "publish"):
        jobs.record_step(job.id, token, name=name, event="started", attempt=1)
    jobs.record_step(job.id, token, name="fetch", event="completed", attempt=1, result={"bytes": 10})
    jobs.heartbeat(job.id, token, checkpoint={"data": {"offset": 10}, "step": "publish"})
    jobs.record_step(job.id, token, name="publish", event="failed", attempt=1, phase="run", error="boom")
    return jobs.fail_job(job.id, token, error="step 'publish' failed (run): boom", retryable=False)


def test_the_card_offers_resume_from_the_first_step_not_completed_and_restart(client):
    job = failed_in_publish()
    html = text_of(client.get(f"/jobs/{job.id}"))
    assert buttons_in(html) == ["Force start", "Resume from step publish", "Restart from scratch"]
    assert f'action="/jobs/{job.id}/resume"' in html and f'hx-post="/jobs/{job.id}/resume"' in html
    assert (
        f'data-confirm="Restart job {job.id} ({job.type}, failed) from scratch? Queues it again with one more attempt '
        'and discards the stored results of fetch and the checkpoint: every step runs again."'
    ) in html


def test_a_job_without_steps_is_offered_only_force_start(client):
    job = make_job("failed")
    assert buttons_in(text_of(client.get(f"/jobs/{job.id}"))) == ["Force start"]


def test_resume_from_the_card_queues_the_job_and_keeps_the_stored_results(client):
    job = failed_in_publish()
    html = text_of(post_action(client, job.id, "resume"))
    assert "Resume: done." in html
    assert jobs.get_job(job.id).status == "queued"
    assert set(steps.results_of(job.id)) == {"fetch"} and steps.checkpoint_of(job.id) is not None
    again = text_of(post_action(client, job.id, "resume"))
    assert "Already queued — nothing was done." in again


def test_restart_from_the_card_discards_results_and_checkpoint(client):
    job = failed_in_publish()
    post_action(client, job.id, "restart")
    assert jobs.get_job(job.id).status == "queued"
    assert steps.results_of(job.id) == {} and steps.checkpoint_of(job.id) is None


def test_the_job_page_shows_replayed_steps_their_result_attempt_and_the_checkpoint(client):
    job = failed_in_publish()
    jobs.resume_job(job.id)
    (claimed,) = jobs.claim_jobs("w2", types=[job.type])
    jobs.start_job(job.id, claimed.lease_token)
    jobs.record_step(job.id, claimed.lease_token, name="fetch", event="replayed", attempt=2, result_attempt=1)
    html = text_of(client.get(f"/jobs/{job.id}"))
    assert '<tr data-step="fetch" data-step-status="replayed"><td class="num">2</td>' in html
    assert 'attempt 1 <span class="muted">(replayed, not run)</span>' in html
    assert "step fetch replayed from attempt 1" in html
    assert 'data-testid="checkpoint"' in html and '"offset": 10' in html


def test_bulk_resume_and_restart_through_the_api(client):
    first, second = failed_in_publish(), failed_in_publish()
    running = make_job("running")
    answer = client.post("/api/jobs/actions", json={"action": "resume", "ids": [first.id, running.id]}).get_json()
    assert answer == {
        "changed": 1,
        "skipped": [{"id": running.id, "status": "running", "reason": "already running — nothing was done"}],
    }
    assert client.post("/api/jobs/actions", json={"action": "restart", "ids": [second.id]}).get_json()["changed"] == 1
    assert set(steps.results_of(first.id)) == {"fetch"} and steps.results_of(second.id) == {}


def test_the_job_json_carries_the_checkpoint_and_result_attempts(client):
    job = failed_in_publish()
    detail = client.get(f"/api/jobs/{job.id}").get_json()
    assert detail["checkpoint"]["data"] == {"offset": 10} and detail["checkpoint"]["step"] == "publish"
    assert detail["checkpoint"]["at"].endswith("Z")
    assert [(s["name"], s["status"], s["result_attempt"]) for s in detail["steps"]] == [
        ("fetch", "completed", 1),
        ("publish", "failed", None),
    ]


def test_the_openapi_document_describes_resume_restart_and_the_step_result(client):
    spec = client.get("/api/openapi.json").get_json()
    assert {"/api/jobs/{job_id}/resume", "/api/jobs/{job_id}/restart"} <= set(spec["paths"])
    assert "409" in spec["paths"]["/api/jobs/{job_id}/resume"]["post"]["responses"]
    text = json.dumps(spec)
    assert "replayed" in text and "result_attempt" in text and "checkpoint" in text


def test_resume_and_restart_from_the_terminal(server):
    job = failed_in_publish()
    done = jobwarden("jobs", "resume", str(job.id), server_url=server.url)
    assert done.returncode == 0 and done.stdout.strip() == f"job {job.id} is now queued"
    again = jobwarden("jobs", "restart", str(job.id), server_url=server.url)
    assert again.returncode == 1 and "refused: current status is queued" in again.stderr
