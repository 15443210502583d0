"""The SQLite watcher counts new queued jobs by their status events' ids, which SQLite hands
out in commit order: a create that took its timestamp, then waited for the write lock behind
another writer, commits with a time older than jobs already counted and must still wake a claim.
And it hears another process's write when it happens, not at its next tick."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from benchmarks._support import wait_until
from webapp.domain.timeutil import utcnow
from webapp.store import transitions, wakeup
from webapp.store.extensions import db
from webapp.store.wakeup import _queued_since

from tests.conftest import sqlite_only

ROOT = Path(__file__).resolve().parent.parent


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


@sqlite_only
def test_a_job_another_process_creates_wakes_a_waiting_claim_without_the_ticks(app, database_url, monkeypatch):
    """The watcher learns of another process's write from the write itself (inotify): with the
    safety-net ticks an hour apart, the claim still wakes."""
    monkeypatch.setattr(wakeup, "SQLITE_WATCH_INTERVAL_S", 3600.0)
    monkeypatch.setattr(wakeup, "_hub", None)  # a hub of its own, watching this test's database
    with app.app_context():
        hub = wakeup.hub()
        wait_until(lambda: hub.watching, 30, "the watcher runs")
        woken = threading.Event()

        def claim_waits() -> None:
            hub.wait(hub.generation, 60.0, types=["demo.other"])
            woken.set()

        threading.Thread(target=claim_waits, daemon=True).start()
        wait_until(lambda: hub.waiting == 1, 30, "the claim waits")
        time.sleep(0.2)  # the watcher's first look (at once when a claim begins to wait) is over
        create = (
            "from webapp import create_app, jobs\n"
            "from tests.conftest import test_config\n"
            f"app = create_app(test_config({database_url!r}))\n"
            "with app.app_context():\n"
            "    jobs.create_job(type='demo.other')\n"
        )
        subprocess.run([sys.executable, "-c", create], check=True, cwd=ROOT, timeout=120)
        assert woken.wait(30), "the claim slept through another process's create"
        monkeypatch.undo()
        transitions.create([{"type": "demo.noop", "max_attempts": 1}], actor="api")
        db.session.commit()  # a write the watcher hears: it leaves its long wait for the usual ticks


def test_a_file_closed_after_writing_wakes_the_watcher_that_waits_for_a_commit(tmp_path):
    """A writer's commit is visible after its WAL write (the write's inotify event can wake a look
    that finds nothing yet); its connection closing the files afterwards wakes the watcher again,
    when the watcher asks for it (every look of its own closes the files too)."""
    wal = tmp_path / "jobwarden.db-wal"
    wal.write_bytes(b"")
    writes = wakeup._Writes(tmp_path, {wal.name})
    assert writes.heard
    wal.open("r+b").close()  # opened for writing and closed, nothing written: as a look closes its connection
    assert not writes.wait(0.2), "a close woke the watcher that did not ask for closes"
    wal.open("r+b").close()  # as a writer's connection closes after its commit
    assert writes.wait(60.0, closes=True), "the close of a file opened for writing did not wake the watcher"
