"""A checkpointing handler whose worker is killed with SIGKILL resumes, on the
next attempt, from the last checkpoint its heartbeats stored."""

# ruff: noqa: F811  (pytest fixtures imported from test_worker_runner are parameters here)
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from webapp import jobs
from webapp.jobs import steps
from webapp.store.extensions import db

from tests.support.server import running_server
from tests.support.worker_process import wait_for
from tests.test_worker_runner import job, start_worker, status_is, step_events  # noqa: F401


@pytest.fixture
def server(app, database_url, tmp_path):
    """The monitor runs in the server and settles a dead worker's job within seconds."""
    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_MONITOR="on",
        JOBWARDEN_MONITOR_INTERVAL="0.5",
        JOBWARDEN_HEARTBEAT_TIMEOUT="2",
        JOBWARDEN_RETRY_BASE_S="0.2",
        JOBWARDEN_RETRY_MAX_S="1",
    ) as running:
        yield running


def stored_epoch(job_id: int) -> int:
    db.session.rollback()
    checkpoint = steps.checkpoint_of(job_id)
    return checkpoint.data["epoch"] if checkpoint else 0


def test_a_job_killed_with_sigkill_resumes_from_its_last_checkpoint(start_worker, tmp_path):
    counter = tmp_path / "counter"
    created = jobs.create_job(
        type="test.train", max_attempts=2, payload={"counter": str(counter), "epochs": 8, "seconds": 0.3}
    )
    first = start_worker()
    wait_for(lambda: stored_epoch(created.id) >= 3, what="three epochs checkpointed")
    os.killpg(first.process.pid, signal.SIGKILL)
    first.wait()
    last = stored_epoch(created.id)
    ran_before = Path(counter).read_text().splitlines()

    start_worker()
    wait_for(status_is(created.id, "completed"), what="completed on the second attempt", timeout=30)

    assert job(created.id).attempt == 2
    assert job(created.id).result == {"resumed_after": last, "epochs": 8}
    ran_after = Path(counter).read_text().splitlines()[len(ran_before) :]
    assert ran_after == [f"epoch {n}" for n in range(last + 1, 9)]  # epochs 1..last did not run again
    db.session.rollback()
    checkpoint = steps.checkpoint_of(created.id)
    # The second attempt's checkpoints replaced the first's, each naming the step it was taken in.
    assert checkpoint.attempt == 2 and checkpoint.data["epoch"] > last
    assert checkpoint.step == f"epoch {checkpoint.data['epoch']}"
