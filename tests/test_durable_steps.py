"""Durable steps through the real thing: a gunicorn server on loopback, a real
`python -m webapp worker`, handlers that count what they ran in a file the test
reads, and the store checked on both databases."""

# ruff: noqa: F811  (pytest fixtures imported from test_worker_runner are parameters here)
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from webapp import jobs
from webapp.client import ClientError, Conflict, JobwardenClient
from webapp.domain import statuses
from webapp.domain.timeutil import utcnow
from webapp.jobs import steps
from webapp.store.extensions import db
from webapp.store.models import Checkpoint, StepResult
from webapp.worker.protocol import WorkerClient

from tests.test_worker_runner import (  # noqa: F401  (fixtures)
    job,
    server,
    start_worker,
    status_is,
    step_events,
    wait_for,
)


def counted(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def api(server) -> JobwardenClient:
    return JobwardenClient(server.url, retries=0)


@pytest.fixture
def failed_pipeline(start_worker, tmp_path):
    """A durable pipeline that failed at its third step, publish, with no attempts left."""
    counter, flag = tmp_path / "counter", tmp_path / "fail-publish"
    flag.write_text("on")
    created = jobs.create_job(
        type="test.durable_pipeline", max_attempts=1, payload={"counter": str(counter), "fail_flag": str(flag)}
    )
    start_worker()
    wait_for(status_is(created.id, "failed"), what="failed at publish")
    assert counted(counter) == ["fetch", "convert", "publish"]
    assert (
        job(created.id).last_error
        == "step 'publish' failed (run): RuntimeError: publish failed (the flag file is there)"
    )
    flag.unlink()
    return created.id, counter


def test_resume_replays_the_completed_steps_and_runs_only_the_failed_one(failed_pipeline, api):
    job_id, counter = failed_pipeline
    assert api.resume(job_id)["status"] == "queued"
    wait_for(status_is(job_id, "completed"), what="completed after the resume")

    assert counted(counter) == ["fetch", "convert", "publish", "publish"]  # fetch and convert did not run again
    assert job(job_id).result == {
        "fetch": {"step": "fetch", "attempt": 1},
        "convert": {"step": "convert", "attempt": 1},
        "publish": {"step": "publish", "attempt": 2},
    }
    second = [(e["name"], e["event"], e.get("result_attempt")) for e in step_events(job_id) if e["attempt"] == 2]
    assert second == [
        ("fetch", "replayed", 1),
        ("convert", "replayed", 1),
        ("publish", "started", None),
        ("publish", "completed", 2),
    ]
    detail = api.get(job_id)
    assert [
        (s["name"], s["attempt"], s["status"], s["result_attempt"]) for s in detail["steps"] if s["attempt"] == 2
    ] == [("fetch", 2, "replayed", 1), ("convert", 2, "replayed", 1), ("publish", 2, "completed", 2)]
    resumed = [e for e in api.events(job_id) if e["action"] == "resume"]
    assert [(e["from_status"], e["to_status"]) for e in resumed] == [("failed", "queued")]


def test_restart_discards_the_stored_results_and_runs_every_step_again(failed_pipeline, api):
    job_id, counter = failed_pipeline
    db.session.rollback()
    assert set(steps.results_of(job_id)) == {"fetch", "convert"}
    assert api.restart(job_id)["status"] == "queued"
    wait_for(status_is(job_id, "completed"), what="completed after the restart")

    assert counted(counter) == ["fetch", "convert", "publish"] * 2
    assert job(job_id).result["fetch"] == {"step": "fetch", "attempt": 2}
    assert not [e for e in step_events(job_id) if e["event"] == "replayed"]


def test_force_start_keeps_the_completed_steps_too(failed_pipeline, api):
    job_id, counter = failed_pipeline
    api.force_start(job_id)
    wait_for(status_is(job_id, "completed"), what="completed after the force start")
    assert counted(counter) == ["fetch", "convert", "publish", "publish"]


def test_an_automatic_retry_replays_the_completed_steps(start_worker, tmp_path):
    counter = tmp_path / "counter"
    created = jobs.create_job(
        type="test.durable_pipeline", max_attempts=2, payload={"counter": str(counter), "fail_attempts": 1}
    )
    start_worker()
    wait_for(status_is(created.id, "completed"), what="completed on the retry")
    assert counted(counter) == ["fetch", "convert", "publish", "publish"]
    assert [(e["name"], e["event"]) for e in step_events(created.id) if e["attempt"] == 2][:2] == [
        ("fetch", "replayed"),
        ("convert", "replayed"),
    ]


def test_resume_and_restart_are_refused_with_the_status_on_live_and_completed_jobs(api, start_worker, tmp_path):
    queued = jobs.create_job(type="nobody.takes.it")
    running = jobs.create_job(type="test.step_sleep", payload={"seconds": 30})
    done = jobs.create_job(type="demo.noop")
    start_worker("--concurrency", "2")
    wait_for(status_is(done.id, "completed"), what="completed")
    wait_for(status_is(running.id, "running"), what="running")
    for job_id, status in ((queued.id, "queued"), (running.id, "running"), (done.id, "completed")):
        for command in (api.resume, api.restart):
            with pytest.raises(Conflict) as refused:
                command(job_id)
            assert (refused.value.code, refused.value.status) == (409, status)
    assert job(running.id).status == "running" and job(done.id).status == "completed"


def test_a_step_with_retries_recovers_inside_one_attempt(start_worker, tmp_path):
    counter = tmp_path / "counter"
    created = jobs.create_job(
        type="test.step_retries", max_attempts=1, payload={"counter": str(counter), "failures": 2, "retries": 3}
    )
    start_worker()
    wait_for(status_is(created.id, "completed"), what="completed")
    assert job(created.id).result == {"tries": 3} and job(created.id).attempt == 1
    assert [(e["event"], e.get("step_attempt"), e["attempt"]) for e in step_events(created.id)] == [
        ("started", None, 1),
        ("retrying", 2, 1),
        ("retrying", 3, 1),
        ("completed", None, 1),
    ]
    assert step_events(created.id)[1]["error"] == "ConnectionError: try 1: the remote end hung up"


def test_a_step_out_of_retries_fails_the_job_in_that_step(start_worker, tmp_path):
    created = jobs.create_job(
        type="test.step_retries",
        max_attempts=1,
        payload={"counter": str(tmp_path / "counter"), "failures": 5, "retries": 1},
    )
    start_worker()
    wait_for(status_is(created.id, "failed"), what="failed")
    assert [e["event"] for e in step_events(created.id)] == ["started", "retrying", "failed"]
    assert job(created.id).last_error == "step 'fetch' failed (run): ConnectionError: try 2: the remote end hung up"


def test_a_result_over_the_cap_fails_the_step_in_phase_record_naming_it(start_worker):
    created = jobs.create_job(type="test.big_result", max_attempts=1, payload={"bytes": 70_000})
    start_worker()
    wait_for(status_is(created.id, "failed"), what="failed")
    failed = step_events(created.id)[-1]
    assert (failed["name"], failed["event"], failed["phase"]) == ("render", "failed", "record")
    assert "the result of step 'render' is 70002 bytes as JSON; at most 65536 are stored" in failed["error"]
    assert job(created.id).last_error.startswith("step 'render' failed (record): ")
    db.session.rollback()
    assert steps.results_of(created.id) == {}


def test_the_server_refuses_a_result_over_the_cap_naming_the_field(server, api):
    created = jobs.create_job(type="t")
    internal = WorkerClient(server.url, internal_key=server.env["JOBWARDEN_INTERNAL_API_KEY"], retries=0)
    (claimed,) = internal.claim("w", ["t"])
    internal.start(created.id, claimed["lease_token"])
    with pytest.raises(ClientError) as refused:
        internal.step(created.id, claimed["lease_token"], name="s", event="completed", attempt=1, result="x" * 70_000)
    assert refused.value.code == 400 and "result" in str(refused.value.field)
    db.session.rollback()
    assert steps.results_of(created.id) == {}


def test_a_result_the_server_never_answered_for_fails_the_step_in_phase_record(server, start_worker, tmp_path):
    counter = tmp_path / "counter"
    created = jobs.create_job(type="test.unrecorded", max_attempts=1, payload={"counter": str(counter), "seconds": 1.5})
    start_worker("--record-timeout", "1")
    wait_for(lambda: counted(counter) == ["work"], what="the step to run")
    server.stop()  # the step's effect happens while nobody can record it
    time.sleep(3.5)
    server.start()
    wait_for(status_is(created.id, "failed"), what="failed", timeout=30)
    events = step_events(created.id)
    # Duplicates aside: the worker resends a report whose answer a just-restarted server was slow to give.
    assert list(dict.fromkeys((e["name"], e["event"], e.get("phase")) for e in events)) == [
        ("work", "started", None),
        ("work", "failed", "record"),
    ]
    assert job(created.id).last_error == (
        "step 'work' failed (record): the step ran but its result was not recorded: "
        "no answer from the server within 1 s"
    )
    db.session.rollback()
    assert steps.results_of(created.id) == {}


def test_stored_results_and_checkpoints_are_pruned_with_their_job(app):
    created = jobs.create_job(type="t", max_attempts=1)
    (claimed,) = jobs.claim_jobs("w", types=["t"])
    jobs.start_job(created.id, claimed.lease_token)
    jobs.record_step(created.id, claimed.lease_token, name="a", event="completed", result={"n": 1})
    jobs.heartbeat(created.id, claimed.lease_token, checkpoint={"data": {"epoch": 3}, "step": "a"})
    jobs.mark_failed(created.id)
    assert db.session.scalar(select(func.count()).select_from(StepResult)) == 1
    assert jobs.prune_finished("failed", cutoff=utcnow(), batch_size=10) == 1
    assert db.session.scalar(select(func.count()).select_from(StepResult)) == 0
    assert db.session.scalar(select(func.count()).select_from(Checkpoint)) == 0


def test_restart_discards_in_the_transition_and_a_refused_restart_discards_nothing(app):
    created = jobs.create_job(type="t", max_attempts=1)
    (claimed,) = jobs.claim_jobs("w", types=["t"])
    jobs.start_job(created.id, claimed.lease_token)
    jobs.record_step(created.id, claimed.lease_token, name="a", event="completed", result=None)
    jobs.heartbeat(created.id, claimed.lease_token, checkpoint={"data": [1, 2], "step": None})
    with pytest.raises(statuses.TransitionRefused):
        jobs.restart_job(created.id)  # running
    assert set(steps.results_of(created.id)) == {"a"} and steps.checkpoint_of(created.id).data == [1, 2]
    jobs.mark_failed(created.id)
    jobs.restart_job(created.id)
    assert steps.results_of(created.id) == {} and steps.checkpoint_of(created.id) is None
