"""Two real replicas (gunicorn servers with their monitors) fire one schedule, and one is killed
with SIGKILL while it fires every second: each fire time makes exactly one job, none is lost."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

from sqlalchemy import select

from webapp.domain.timeutil import utcnow
from webapp.jobs import schedules as store
from webapp.store.extensions import db
from webapp.store.models import Job, JobEvent

from tests.support.server import running_server

FIRES_BEFORE_KILL = 5
FIRES_AFTER_KILL = 5
DEADLINE_S = 90


def scheduled_runs() -> list:
    db.session.rollback()
    return list(db.session.scalars(select(Job.scheduled_for).where(Job.schedule == "tick").order_by(Job.scheduled_for)))


def wait_for_runs(count: int) -> list:
    deadline = time.monotonic() + DEADLINE_S
    while (runs := scheduled_runs()) and len(runs) < count or not runs:
        assert time.monotonic() < deadline, f"only {len(runs)} runs of {count} within {DEADLINE_S} s"
        time.sleep(0.2)
    return runs


def test_two_replicas_and_a_kill_make_one_job_per_fire_time(app, database_url, tmp_path):
    # Made before the replicas start, so both see it at their first round and race for every time.
    store.create("tick", {"type": "tick", "every_s": 1, "misfire": "all"}, source="api", actor="test")
    db.session.rollback()
    with (
        running_server(database_url, tmp_path / "a.log", JOBWARDEN_MONITOR="on") as first,
        running_server(database_url, tmp_path / "b.log", JOBWARDEN_MONITOR="on") as second,
    ):
        wait_for_runs(FIRES_BEFORE_KILL)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
        killed_at = utcnow()
        runs = wait_for_runs(len(scheduled_runs()) + FIRES_AFTER_KILL)
        store.set_paused("tick", True, actor="test")
        assert second.process.poll() is None
    runs = scheduled_runs()
    assert len(runs) == len(set(runs))  # the unique index holds this; the next lines are the test
    expected = [runs[0] + timedelta(seconds=n) for n in range(len(runs))]
    assert runs == expected, "a fire time was skipped or fired twice"
    # The survivor fired times after the kill. Not "FIRES_AFTER_KILL - 1 s after it": a loaded
    # machine's rounds lag behind the fire times (misfire "all" catches them up), and the five
    # runs counted after the kill began up to a second earlier (missed by 22 ms in a full run).
    assert runs[-1] > killed_at
    firing = set(
        db.session.scalars(select(JobEvent.actor).join(Job, Job.id == JobEvent.job_id).where(Job.schedule == "tick"))
    )
    assert len(firing) == 2, f"both replicas should have fired some times: {firing}"
    for log in (tmp_path / "a.log", tmp_path / "b.log"):
        assert "schedule round failed" not in log.read_text()
