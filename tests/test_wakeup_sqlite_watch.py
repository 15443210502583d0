"""The SQLite watcher counts new queued jobs by their status events' ids, which SQLite hands
out in commit order: a create that took its timestamp, then waited for the write lock behind
another writer, commits with a time older than jobs already counted and must still wake a claim.
It hears another process's write when it happens, not at its next tick; a served claim is woken
by every commit shape another process makes, also when the commit shows well after its WAL
write (a loaded machine), and the safety tick finds a commit that no event follows."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks._support import wait_until
from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import queues
from webapp.store import leases, transitions, wakeup
from webapp.store.extensions import db
from webapp.store.wakeup import _queued_since
from webapp.worker.protocol import WorkerClient

from tests.conftest import INTERNAL_KEY, sqlite_only
from tests.support.claimer import start_waiting_claim
from tests.support.server import running_server

ROOT = Path(__file__).resolve().parent.parent


@sqlite_only
def test_a_job_committed_later_with_an_older_time_is_still_counted(app):
    with app.app_context(), db.engine.connect() as watching:
        kinds, seen = _queued_since(watching, None)
        assert kinds == {}  # nothing queued yet

        now = utcnow()
        transitions.create([{"type": "demo.noop", "max_attempts": 1}], actor="api", now=now)
        db.session.commit()
        kinds, seen = _queued_since(watching, seen)
        assert kinds == {("demo.noop", "default"): 1}

        # Took its time a second earlier, committed after the look above.
        transitions.create(
            [{"type": "demo.late", "queue": "q", "max_attempts": 1}], actor="api", now=now - timedelta(seconds=1)
        )
        db.session.commit()
        kinds, seen = _queued_since(watching, seen)
        assert kinds == {("demo.late", "q"): 1}

        kinds, _ = _queued_since(watching, seen)
        assert kinds == {}  # counted once


@sqlite_only
def test_a_queued_job_whose_old_lease_is_released_is_counted(app):
    """A queued job held back by its old attempt's lease becomes claimable when that lease is
    released: no status event says so, its note does."""
    with app.app_context(), db.engine.connect() as watching:
        job = transitions.create([{"type": "demo.noop", "queue": "q", "max_attempts": 3}], actor="api")[0]
        db.session.commit()
        (claimed,) = jobs.claim_jobs("w1", types=["demo.noop"], start=True)
        jobs.mark_failed(job.id)
        jobs.resume_job(job.id)  # queued, held back by attempt 1's lease
        _, seen = _queued_since(watching, None)
        with jobs.unit_of_work():
            assert leases.release(job.id, claimed.attempt)
        kinds, _ = _queued_since(watching, seen)
        assert kinds == {("demo.noop", "q"): 1}


@sqlite_only
def test_a_job_another_process_creates_wakes_a_waiting_claim_without_the_ticks(app, database_url, monkeypatch):
    """The watcher learns of another process's write from the write itself (inotify): with the
    safety-net ticks an hour apart, the claim still wakes."""
    monkeypatch.setattr(wakeup, "SQLITE_WATCH_INTERVAL_S", 3600.0)
    monkeypatch.setattr(wakeup, "SQLITE_HEARD_LOOK_S", 3600.0)
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


def test_a_file_closed_after_writing_wakes_the_watcher(tmp_path):
    """A writer's commit shows after its WAL write (the write's inotify event can wake a look
    that finds nothing yet); its connection closing the files afterwards wakes the watcher again."""
    wal = tmp_path / "jobwarden.db-wal"
    wal.write_bytes(b"")
    writes = wakeup._Writes(tmp_path, {wal.name})
    assert writes.heard
    (tmp_path / "other").open("w").close()  # another file of the directory: not ours
    assert not writes.wait(0.2), "a file not watched woke the watcher"
    wal.open("r+b").close()  # as a writer's connection closes after its commit
    assert writes.wait(60.0), "the close of a file opened for writing did not wake the watcher"


# Served claims woken by another process's creates: well below the 1 s safety tick, so an
# answer within it was the wake-up's (a claim nothing wakes answers at the end of its wait).
WOKEN_WITHIN_S = 0.5
CLAIM_WAIT_S = 20.0
# A loaded machine's commit shows this long after its WAL write (tests.support.late_commits):
# past the watcher's RECENT_WRITE_NS of asks after a write, so only an event after the commit,
# or the safety tick, can find it.
LATE_S = 0.4
# A writer descheduled between its WAL write and its commit's showing (RECENT_WRITE_NS was 50 ms:
# on a busy CI machine a connection kept open waited for the 1 s safety tick).
DESCHEDULED_S = 0.1


@pytest.fixture
def served(app, database_url, tmp_path) -> Iterator[WorkerClient]:
    """The store served by gunicorn with two worker processes, as `jobwarden serve` runs it."""
    with running_server(database_url, tmp_path / "server.log", deployed=True, GUNICORN_WORKERS="2") as server:
        yield WorkerClient(server.url, internal_key=INTERNAL_KEY, timeout=30)


@pytest.fixture
def writer(database_url) -> Iterator[subprocess.Popen[str]]:
    """Another process that creates jobs on command (tests.support.late_commits)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.late_commits", database_url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield process
    process.kill()
    process.wait()


def answer_after_commit(client: WorkerClient, writer: subprocess.Popen[str], shape: str, late_s: float) -> float:
    """Seconds from the commit of a job the writer creates to the answer of a claim that waited for it."""
    waiting, answers = start_waiting_claim(client, CLAIM_WAIT_S)
    time.sleep(0.05)  # the claim now waits
    assert writer.stdin is not None and writer.stdout is not None
    writer.stdin.write(f"{shape} {late_s}\n")
    writer.stdin.flush()
    done, hooked = writer.stdout.readline().split()
    committed = time.monotonic()
    if hooked != "hooked":
        pytest.skip("SQLite's system calls cannot be replaced here: its commits cannot be made late")
    waiting.join(timeout=CLAIM_WAIT_S + 30)
    answered, claimed = answers[0]
    assert len(claimed) == 1, f"{shape}: the claim took {claimed}"
    return answered - committed


@sqlite_only
@pytest.mark.slow
def test_every_commit_of_another_process_wakes_a_served_claim(served, writer):
    """200 creates in each shape a commit takes (the job alone; then its audit row in a second
    transaction; with its audit row; from a connection that stays open), then from a connection
    kept open whose commit shows 0.1 s after its WAL write, then creates whose commit shows
    0.4 s after it: each wakes the claim waiting in a gunicorn worker.
    A late commit used to go unheard until the next write or the end of the claim's wait (20 s):
    the watcher had looked when the WAL was written, then for 50 ms, and a close after the
    commit woke it only if nothing had been found twice."""
    for shape in ("create", "create+audit", "create-with-audit", "kept-open"):
        for _ in range(50):
            assert answer_after_commit(served, writer, shape, 0.0) < WOKEN_WITHIN_S, shape
    for _ in range(10):
        assert answer_after_commit(served, writer, "kept-open", DESCHEDULED_S) < WOKEN_WITHIN_S, (
            "kept-open, descheduled"
        )
    for shape in ("create", "create+audit", "create-with-audit"):
        for _ in range(10):
            assert answer_after_commit(served, writer, shape, LATE_S) < WOKEN_WITHIN_S, f"{shape}, {LATE_S} s late"


@sqlite_only
@pytest.mark.slow
def test_the_safety_tick_finds_a_late_commit_that_no_event_follows(served, writer):
    """A writer whose connection stays open closes nothing after its commit; shown 0.4 s after
    its WAL write, no event announces it: the safety tick (SQLITE_HEARD_LOOK_S) finds it, where
    the tick used to look only at the files, unchanged since the write, and the claim slept on."""
    for _ in range(3):
        assert answer_after_commit(served, writer, "kept-open", LATE_S) < wakeup.SQLITE_HEARD_LOOK_S + 2.0


@sqlite_only
@pytest.mark.slow
def test_a_queue_resumed_in_another_process_wakes_a_served_claim(app, served):
    """A resume (or a raised limit) makes no job newly queued: the watcher used to find nothing
    to count, and a claim waiting in the other gunicorn worker than the one that took the
    operator's resume (or in a server beside the command line) waited out its whole wait."""
    jobs.create_job(type="demo.noop", queue="gpu")
    queues.pause("gpu", actor="ops")
    waiting, answers = start_waiting_claim(served, CLAIM_WAIT_S)
    time.sleep(0.5)  # the claim found the queue paused and waits
    assert not answers
    resumed = time.monotonic()
    queues.resume("gpu", actor="ops")  # this test's process: not the server's
    waiting.join(timeout=CLAIM_WAIT_S + 30)
    answered, claimed = answers[0]
    assert [job["queue"] for job in claimed] == ["gpu"]
    assert answered - resumed < wakeup.SQLITE_HEARD_LOOK_S + 2.0
