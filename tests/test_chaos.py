"""A short chaos run (benchmarks/chaos.py has the long one): workers SIGKILLed
every second and the server restarted mid-run, on each database. Nothing is
lost, nothing completes twice, nothing runs after completing, every attempt is
recorded, every interrupted job is recovered within timeout + interval, and no
job's command outlives its SIGKILLed worker."""

from __future__ import annotations

import pytest

from benchmarks.chaos import Settings, run
from webapp.store.extensions import db

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow


def test_killing_workers_and_restarting_the_server_loses_no_job(app, database_url, tmp_path):
    db.session.remove()
    settings = Settings(jobs=150, workers=3, kill_every=1.0, time_limit=120)
    result = run(database_url, settings, tmp_path)
    assert result.problems == [], result.summary()
    assert result.kills >= 3 and result.restarts == 1
    assert result.statuses["completed"] == 150
    assert result.leftover_processes == 0
