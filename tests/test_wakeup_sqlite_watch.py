"""The SQLite watcher counts new queued jobs by their status events' ids, which SQLite hands
out in commit order: a create that took its timestamp, then waited for the write lock behind
another writer, commits with a time older than jobs already counted and must still wake a claim."""

from __future__ import annotations

from datetime import timedelta

from webapp.domain.timeutil import utcnow
from webapp.store import transitions
from webapp.store.extensions import db
from webapp.store.wakeup import _queued_since

from tests.conftest import sqlite_only


@sqlite_only
def test_a_job_committed_later_with_an_older_time_is_still_counted(app):
    with app.app_context():
        engine = db.engine
        kinds, seen = _queued_since(engine, None)
        assert kinds == {}  # nothing queued yet

        now = utcnow()
        transitions.create([{"type": "demo.noop", "max_attempts": 1}], actor="api", now=now)
        db.session.commit()
        kinds, seen = _queued_since(engine, seen)
        assert kinds == {("demo.noop", "default"): 1}

        # Took its time a second earlier, committed after the look above.
        transitions.create(
            [{"type": "demo.late", "queue": "q", "max_attempts": 1}], actor="api", now=now - timedelta(seconds=1)
        )
        db.session.commit()
        kinds, seen = _queued_since(engine, seen)
        assert kinds == {("demo.late", "q"): 1}

        kinds, _ = _queued_since(engine, seen)
        assert kinds == {}  # counted once
