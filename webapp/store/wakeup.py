"""Waking waiting claims when a job becomes claimable.

One `Hub` per server process: waiting claim requests sleep on its condition
variable, holding no database connection, and every wake-up reaches them all.
What wakes the hub:

- the state machine's `announce_claimable()` in the transaction that made a job
  claimable (created queued, re-queued, force-started): after that commit the
  hub of the committing process wakes at once;
- PostgreSQL: the same call sends `NOTIFY jobwarden_claimable`, delivered on
  commit; one listening connection per process (a thread, outside the pool)
  wakes the hub, so a job created through any replica wakes every replica;
- SQLite: other processes' commits are seen by a thread that watches the
  database files (a `stat`, no query) every `SQLITE_WATCH_INTERVAL_S` while
  claims wait, and on a change (or within RECENT_WRITE_NS of one) runs one
  indexed query: has a queued job been added or re-queued since it last looked?

Nothing here polls per waiting worker: at rest a server runs no statement at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from .commit_hooks import after_commit
from .extensions import db
from .integrity import sqlite_path
from .models import Job

log = logging.getLogger(__name__)

CHANNEL = "jobwarden_claimable"
SQLITE_WATCH_INTERVAL_S = 0.01
SQLITE_IDLE_LOOK_S = 1.0  # with no claim waiting the watcher sleeps until one does (this is its safety net)
# File times tick coarsely (a few ms) and a rewritten WAL keeps its size: for this
# long after a change the watcher queries even if the files look the same.
RECENT_WRITE_NS = 50_000_000
LISTEN_RETRY_S = 1.0
UNWATCHED_WAIT_S = 0.5  # the longest sleep while no listener or watcher runs (it is starting or down)


class Hub:
    """Waiting claims of one process and what wakes them."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0
        self._waiting = 0
        self.waiter_arrived = threading.Event()  # set when a claim begins to wait with none waiting before
        self.watching = False  # a listener or watcher is running and connected

    @property
    def generation(self) -> int:
        """Read before looking for work; `wait` returns at once if a wake-up came since."""
        return self._generation

    @property
    def waiting(self) -> int:
        return self._waiting

    def wake(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def nudge(self) -> None:
        """Wake the waiting claims to look at their own `stop` (no job became claimable)."""
        with self._condition:
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float, stop: threading.Event | None = None) -> None:
        """Sleep up to `timeout` s unless a wake-up has come since `seen` was read, or `stop` is set."""
        deadline = time.monotonic() + timeout
        with self._condition:
            self._waiting += 1
            if self._waiting == 1:
                self.waiter_arrived.set()
            try:
                while self._generation == seen and not (stop is not None and stop.is_set()):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    if not self.watching:
                        remaining = min(remaining, UNWATCHED_WAIT_S)
                    self._condition.wait(remaining)
                    if not self.watching:
                        return  # nothing would have woken us: look again
            finally:
                self._waiting -= 1


_hub: Hub | None = None
_hub_pid = 0
_hub_lock = threading.Lock()


def hub() -> Hub:
    """This process's hub, its listener (PostgreSQL) or watcher (SQLite) started on first use.

    Started lazily, in the process that serves requests: a thread or an open
    connection would not survive gunicorn's fork of the master.
    """
    global _hub, _hub_pid
    with _hub_lock:
        if _hub is None or _hub_pid != os.getpid():
            _hub, _hub_pid = Hub(), os.getpid()
            engine = db.engine
            target = _listen if engine.dialect.name == "postgresql" else _watch_sqlite_files
            threading.Thread(target=target, args=(_hub, engine), name="claim-wakeup", daemon=True).start()
        return _hub


def announce_claimable() -> None:
    """Called by the state machine inside a transaction that made a job claimable."""
    session = db.session()
    after_commit(_wake_this_process)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def _wake_this_process() -> None:
    if _hub is not None and _hub_pid == os.getpid():
        _hub.wake()


# --- PostgreSQL: one LISTEN connection per process ------------------------------------------


def _listen(hub: Hub, engine: Engine) -> None:
    import psycopg

    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    failures = 0
    while True:
        try:
            with psycopg.connect(conninfo, autocommit=True) as connection:
                connection.execute(f"LISTEN {CHANNEL}")
                hub.watching = True
                failures = 0
                hub.wake()  # a notification may have been missed while not listening
                for _notification in connection.notifies():
                    hub.wake()
        except Exception as error:  # the database restarted or is unreachable: listen again
            failures += 1
            log.log(
                logging.WARNING if failures == 1 else logging.DEBUG,
                "claim wake-up: not listening (%s); waiting claims look again every %s s",
                error,
                UNWATCHED_WAIT_S,
            )
        hub.watching = False
        hub.wake()
        time.sleep(LISTEN_RETRY_S)


# --- SQLite: watch the files, query on a change --------------------------------------------


def _file_state(paths: list[Path]) -> tuple[Any, ...]:
    state: list[Any] = []
    for path in paths:
        try:
            stat = path.stat()
            state.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        except FileNotFoundError:
            state.append(None)
    return tuple(state)


def _written_lately(files: tuple[Any, ...]) -> bool:
    """A file changed within the timestamp granularity: a second write may have left its state as it was."""
    now = time.time_ns()
    return any(state is not None and now - state[0] < RECENT_WRITE_NS for state in files)


def _latest_queued(engine: Engine) -> datetime | None:
    """When a job last became queued (ix_jobs_status_updated): a new value means a new claimable job."""
    with engine.connect() as connection:
        return connection.execute(select(func.max(Job.updated_at)).where(Job.status == "queued")).scalar()


def _watch_sqlite_files(hub: Hub, engine: Engine) -> None:
    database = sqlite_path(engine.url.render_as_string(hide_password=False))
    if database is None:  # in memory: one process, the in-process wake-up is all there is
        hub.watching = True
        return
    paths = [database, Path(f"{database}-wal")]
    seen_files: tuple[Any, ...] = ()
    latest: datetime | None = None
    while True:
        try:
            if hub.waiting == 0:
                # Nobody waits: sleep until a claim does, then look at once — a job another
                # process creates just as the claim begins to wait must not wait for a timer.
                hub.watching = True
                hub.waiter_arrived.clear()
                if hub.waiting == 0:
                    hub.waiter_arrived.wait(SQLITE_IDLE_LOOK_S)
                seen_files = ()  # check the store now that someone waits
                continue
            files = _file_state(paths)
            if files != seen_files or _written_lately(files):
                seen_files = files
                newest = _latest_queued(engine)
                if newest is not None and (latest is None or newest > latest):
                    hub.wake()
                latest = newest
            hub.watching = True
        except Exception:
            hub.watching = False
            log.exception("claim wake-up: cannot watch the SQLite store; waiting claims look again")
            time.sleep(LISTEN_RETRY_S)
        time.sleep(SQLITE_WATCH_INTERVAL_S)
