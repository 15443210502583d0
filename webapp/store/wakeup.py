"""Waking waiting claims when a job becomes claimable.

One `Hub` per server process: waiting claim requests sleep on it, each on an event of
its own, holding no database connection. What wakes the hub:

- the state machine's `announce_claimable()` in the transaction that made a job
  claimable (created queued, re-queued, force-started): after that commit the
  hub of the committing process wakes at once;
- PostgreSQL: the same call sends `NOTIFY jobwarden_claimable`, delivered on
  commit; one listening connection per process (a thread, outside the pool)
  wakes the hub, so a job created through any replica wakes every replica (the
  notification names its kinds of jobs, and the process that sent it, whose own
  listener skips it);
- SQLite: other processes' commits are seen by a thread that watches the
  database files while claims wait, with a connection of its own: its `PRAGMA data_version`
  changes exactly when another connection has committed, so it runs its query then and only
  then. It asks on every write of the database or its WAL by any process (inotify, on Linux)
  and on every close of them after writing: a commit shows a moment after its WAL write, and
  the app's connections close after their commits (NullPool), so a create in another gunicorn
  worker or the command line picks up at once, however late its commit shows. It also asks
  after a write (a writer that keeps its connection open closes nothing after its commit):
  every SQLITE_WATCH_INTERVAL_S for FRESH_WRITE_NS, every SQLITE_LATE_COMMIT_LOOK_S until
  RECENT_WRITE_NS (`_next_look_s`), and every SQLITE_HEARD_LOOK_S otherwise:
  the safety net, which finds any commit the events did not announce. Without inotify it asks
  every SQLITE_WATCH_INTERVAL_S. Its query: how many jobs, of which type and queue, were added
  or re-queued (their status events), or freed by a released lease (its note, LEASE_RELEASED:
  the job was queued already), since it last looked, and did a queue change (its events: a
  resume or a raised limit frees queued jobs and queues none)? However fast the commits come, it
  looks at most every SQLITE_LOOK_GAP_S.

Each wake-up wakes as many waiting claims as jobs became claimable, of the claims that take
their type and queue (a job created with 500 claims waiting costs one claim statement per
process, not 500); a waiting claim a wake-up picked that finds nothing waits again.

Nothing here polls per waiting worker: with no claim waiting a server runs no statement at
all; with claims waiting and nothing written, SQLite's watcher asks `PRAGMA data_version` once a
second per process (two processes, four claims waiting: 0.02 s of CPU in 20 s).
"""

from __future__ import annotations

import ctypes
import itertools
import json
import logging
import os
import secrets
import select as io_select
import struct
import threading
import time
from functools import partial
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import ColumnElement, Integer, Text, and_, cast, func, literal, or_, select, text
from sqlalchemy.engine import Connection, Engine

from ..domain.event_kinds import EventKind
from ..domain.statuses import Status
from .commit_hooks import after_commit
from .dialects import on_postgresql
from .extensions import db
from .integrity import sqlite_path
from .models import Job, JobEvent, QueueEvent
from .moves import Kinds
from .status_sql import status_is

log = logging.getLogger(__name__)

CHANNEL = "jobwarden_claimable"
# The note of a queued job whose earlier attempt's lease was released (webapp.store.leases): it was
# held back until that attempt stopped and is claimable from this commit on.
LEASE_RELEASED = "lease_released"
# A notification's keys (`_payload` in Python, `notification_of_row` in SQL, `_kinds_of` reads them).
_SENDER, _SEQUENCE, _JOBS_KEY = "from", "n", "jobs"
SQLITE_WATCH_INTERVAL_S = 0.01
SQLITE_HEARD_LOOK_S = 1.0  # the safety net's tick where inotify hears the writes (idle: ~0 CPU)
SQLITE_LOOK_GAP_S = 0.002  # the watcher's looks, however fast the files change
SQLITE_IDLE_LOOK_S = 1.0  # with no claim waiting the watcher sleeps until one does (this is its safety net)
# A commit shows a moment after its WAL write (31-45 ms with two busy processes on two cores,
# later on a busier machine): for a writer whose connection stays open (no close follows), the
# watcher asks every SQLITE_WATCH_INTERVAL_S for FRESH_WRITE_NS after a write, then every
# SQLITE_LATE_COMMIT_LOOK_S until RECENT_WRITE_NS. Asking only for 50 ms left a commit later
# than that to the safety tick (1 s, stop 39's CI); asking every 10 ms for the whole 250 ms cost
# an idle server with one heartbeating worker 0.13 % of a core more.
FRESH_WRITE_NS = 50_000_000
RECENT_WRITE_NS = 250_000_000
SQLITE_LATE_COMMIT_LOOK_S = 0.05
LISTEN_RETRY_S = 1.0
MAX_PAYLOAD_CHARS = 7900  # PostgreSQL's limit is 8000 bytes
UNWATCHED_WAIT_S = 0.5  # the longest sleep while no listener or watcher runs (it is starting or down)


class Waiter:
    """One waiting claim: which jobs it takes (None: any type, any queue) and what wakes it."""

    def __init__(self, types: list[str] | None, queues: list[str] | None) -> None:
        self.types = frozenset(types) if types else None
        self.queues = frozenset(queues) if queues else None
        self.event = threading.Event()
        self.chosen = False  # a wake-up picked it: it claims now
        self.woken_for: tuple[str, str] | None = None  # the (type, queue) of the job it was picked for

    def takes(self, job_type: str, queue: str) -> bool:
        return (self.types is None or job_type in self.types) and (self.queues is None or queue in self.queues)


class Hub:
    """Waiting claims of one process and what wakes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._waiters: dict[Waiter, None] = {}  # in the order they began to wait: the longest first
        self._sequence = itertools.count()
        self.origin = secrets.token_hex(8)  # names this process's notifications, which it has woken for already
        self.waiter_arrived = threading.Event()  # set when a claim begins to wait with none waiting before
        self.watching = False  # a listener or watcher is running and connected

    @property
    def generation(self) -> int:
        """Read before looking for work; `wait` returns at once if a wake-up came since."""
        return self._generation

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def wake(self, kinds: Kinds | None = None) -> None:
        """Jobs became claimable: `kinds` counts them by (type, queue), and as many waiting
        claims that take each kind as there are such jobs claim again (None: every claim
        looks). Claims between two looks see the generation change and look again."""
        with self._lock:
            self._generation += 1
            if kinds is None:
                chosen = list(self._waiters)
            else:
                chosen = []
                for (job_type, queue), count in kinds.items():
                    for waiter in self._waiters:
                        if count <= 0:
                            break
                        if not waiter.chosen and waiter.takes(job_type, queue):
                            waiter.chosen = True
                            waiter.woken_for = (job_type, queue)
                            chosen.append(waiter)
                            count -= 1
            for waiter in chosen:
                waiter.chosen = True
                del self._waiters[waiter]
                waiter.event.set()

    def nudge(self) -> None:
        """Wake the waiting claims to look at their own `stop` (no job became claimable)."""
        with self._lock:
            for waiter in self._waiters:
                waiter.event.set()

    def next_notification(self) -> int:
        return next(self._sequence)

    def wait(
        self,
        seen: int,
        timeout: float,
        stop: threading.Event | None = None,
        *,
        types: list[str] | None = None,
        queues: list[str] | None = None,
    ) -> tuple[str, str] | None:
        """Sleep up to `timeout` s until a wake-up picks this claim (it takes jobs of `types` and
        `queues`), unless a wake-up has come since `seen` was read, or `stop` is set. The
        (type, queue) of the job it was picked for, if it was picked for one."""
        deadline = time.monotonic() + timeout
        waiter = Waiter(types, queues)
        with self._lock:
            if self._generation != seen:
                return None
            self._waiters[waiter] = None
            if len(self._waiters) == 1:
                self.waiter_arrived.set()
        try:
            while not (stop is not None and stop.is_set()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if not self.watching:
                    remaining = min(remaining, UNWATCHED_WAIT_S)
                waiter.event.wait(remaining)
                with self._lock:
                    if waiter.chosen:
                        return waiter.woken_for
                    waiter.event.clear()  # a nudge: look at `stop` again
                if not self.watching:
                    return None  # nothing would have woken us: look again
            return None
        finally:
            with self._lock:
                self._waiters.pop(waiter, None)


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


def announce_claimable(kinds: Kinds | None = None) -> None:
    """Called inside a transaction that made jobs claimable: `kinds` counts them by (type, queue);
    None (an operator's change of a queue): every waiting claim looks again."""
    session = db.session()
    wake_here_after_commit(kinds)
    if on_postgresql():
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": _payload(kinds)})


def wake_here_after_commit(kinds: Kinds | None = None) -> None:
    """This process's waiting claims look again once the transaction commits; other processes
    learn it from a notification (`announce_claimable`, or one a statement sends itself:
    `notification_payload`)."""
    after_commit(partial(_wake_this_process, kinds))


def notification_payload(kinds: Kinds | None = None) -> str:
    """The payload of a notification for a statement that sends it itself (`pg_notify` in one
    of its CTEs) rather than as a statement of its own: it wakes as many claims as `kinds`
    counts jobs, or (None) every waiting claim."""
    return _payload(kinds)


def notification_of_row(job_type: ColumnElement[str], queue: ColumnElement[str]) -> ColumnElement[str]:
    """The payload `notification_payload({(type, queue): 1})` would send, built in SQL from the row
    a statement moved, for a statement that learns the job's kind only as it runs (a released lease).
    A type and a queue are at most 200 characters: it fits in a notification."""
    origin, sequence = _sender()
    jobs = func.json_build_array(func.json_build_array(job_type, queue, literal(1, Integer)))
    payload = func.json_build_object(
        _bound_text(_SENDER),
        _bound_text(origin),
        _bound_text(_SEQUENCE),
        literal(sequence, Integer),
        _bound_text(_JOBS_KEY),
        jobs,
    )
    return cast(payload, Text)


def _bound_text(value: str) -> ColumnElement[str]:
    """A string bound as text: json_build_object's arguments are of any type, so an untyped one is refused."""
    return cast(literal(value), Text)


def _wake_this_process(kinds: Kinds | None) -> None:
    if _hub is not None and _hub_pid == os.getpid():
        _hub.wake(kinds)


def _payload(kinds: Kinds | None) -> str:
    """The notification: who sent it (its own listener skips it: this process woke its claims after
    the commit), a sequence number (PostgreSQL folds equal notifications of one transaction into
    one) and the kinds, or null (all look) when they would not fit in a notification."""
    origin, sequence = _sender()
    listed = None if kinds is None else [[job_type, queue, count] for (job_type, queue), count in kinds.items()]
    payload = json.dumps({_SENDER: origin, _SEQUENCE: sequence, _JOBS_KEY: listed})
    if len(payload) > MAX_PAYLOAD_CHARS:
        payload = json.dumps({_SENDER: origin, _SEQUENCE: sequence, _JOBS_KEY: None})
    return payload


def _sender() -> tuple[str, int]:
    """A notification's origin and sequence number: this process's hub's, if it has one."""
    own = _hub if _hub is not None and _hub_pid == os.getpid() else None
    return (own.origin, own.next_notification()) if own is not None else ("", 0)


def _kinds_of(payload: str) -> tuple[str, Kinds | None]:
    """(origin, kinds) of a notification; one this version cannot read wakes every claim."""
    try:
        message = json.loads(payload)
        listed = message[_JOBS_KEY]
        kinds = None if listed is None else {(str(t), str(q)): int(n) for t, q, n in listed}
        return str(message[_SENDER]), kinds
    except (ValueError, TypeError, KeyError):
        return "", None


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
                # Sleeps on the socket until the server sends something: psycopg's notifies()
                # wakes every 0.1 s to look, ten wake-ups a second per idle server process.
                incoming = io_select.poll()
                incoming.register(connection.fileno(), io_select.POLLIN)
                while True:
                    for notification in connection.notifies(timeout=0):  # those already received
                        origin, kinds = _kinds_of(notification.payload)
                        if origin != hub.origin:
                            hub.wake(kinds)
                    incoming.poll()
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


def _next_look_s(writes: _Writes, paths: list[Path]) -> float:
    """How long the watcher may wait for an event before it asks again: soon after a write,
    whose commit may not show yet; else its safety tick (every 10 ms without inotify)."""
    if not writes.heard:
        return SQLITE_WATCH_INTERVAL_S
    now, newest = time.time_ns(), None
    for path in paths:
        try:
            newest = max(newest or 0, path.stat().st_mtime_ns)
        except FileNotFoundError:
            pass
    if newest is None or now - newest >= RECENT_WRITE_NS:
        return SQLITE_HEARD_LOOK_S
    return SQLITE_WATCH_INTERVAL_S if now - newest < FRESH_WRITE_NS else SQLITE_LATE_COMMIT_LOOK_S


def _data_version(connection: Connection) -> int:
    """SQLite's count that changes when a connection other than `connection` commits."""
    version = connection.exec_driver_sql("PRAGMA data_version").scalar_one()
    connection.rollback()  # ends the read (nothing is held between two asks)
    return int(version)


class _Seen(NamedTuple):
    """The newest events a look saw: of jobs, and of queues."""

    job_event: int
    queue_event: int


def _queued_since(connection: Connection, since: _Seen | None) -> tuple[Kinds | None, _Seen]:
    """The jobs that became queued, or claimable by a released lease (LEASE_RELEASED), after the
    events `since`, still queued, counted by (type, queue), and the newest events seen. Event ids,
    not times: SQLite hands them out under its write lock, in commit order, while a writer takes its
    timestamp before it waits for that lock (a create that waited behind a batch would carry a time
    older than one seen already, and never be counted).
    None (every claim looks) after a queue's event: a pause, resume or change of limits in another
    process may let queued jobs be claimed, and makes no job newly queued. The first look (`since`
    None) counts nothing: None if any job is queued."""
    try:
        newest = _Seen(
            connection.execute(select(func.max(JobEvent.id))).scalar() or 0,
            connection.execute(select(func.max(QueueEvent.id))).scalar() or 0,
        )
        if since is None:
            anything = connection.execute(select(Job.id).where(status_is(Job.status, Status.QUEUED)).limit(1)).first()
            return (None if anything else {}), newest
        if newest.queue_event != since.queue_event:
            return None, newest
        rows = connection.execute(
            select(Job.type, Job.queue, func.count())
            .select_from(JobEvent)
            .join(Job, Job.id == JobEvent.job_id)
            .where(
                JobEvent.id > since.job_event,
                JobEvent.id <= newest.job_event,
                or_(
                    JobEvent.to_status == Status.QUEUED,
                    and_(JobEvent.kind == EventKind.NOTE, JobEvent.action == LEASE_RELEASED),
                ),
                status_is(Job.status, Status.QUEUED),
            )
            .group_by(Job.type, Job.queue)
        ).all()
        return {(job_type, queue): count for job_type, queue, count in rows}, newest
    finally:
        connection.rollback()


class _Writes:
    """Wakes the watcher when a file of `names` in `directory` is written, or closed after
    writing, by any process (Linux inotify on the directory, so a WAL deleted and made again
    stays watched); where inotify is not to be had, `wait` just sleeps its timeout.

    Closes count: the WAL's write arrives before its commit shows (the commit's fsync and the
    shared index come after it; on a loaded machine tens of milliseconds after), and the app
    closes each SQLite connection after its commit (NullPool): that close is the event after
    the commit. The watcher's own connection stays open, so its asks close nothing; every
    other reader's close wakes it to ask `PRAGMA data_version`, which costs no query."""

    _IN_MODIFY, _IN_CLOSE_WRITE, _IN_CREATE, _IN_MOVED_TO = 0x2, 0x8, 0x100, 0x80
    _HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)

    def __init__(self, directory: Path, names: set[str]) -> None:
        self._names = {name.encode() for name in names}
        self._fd: int | None = None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                return
            mask = self._IN_MODIFY | self._IN_CLOSE_WRITE | self._IN_CREATE | self._IN_MOVED_TO
            if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
                os.close(fd)
                return
            self._fd = fd
        except (OSError, AttributeError):  # not Linux: the stat ticks alone
            self._fd = None

    @property
    def heard(self) -> bool:
        """Whether writes wake `wait` (inotify), so the stat ticks are only a safety net."""
        return self._fd is not None

    def wait(self, timeout: float) -> bool:
        """Until one of the files is written or closed after writing: True; or `timeout` passes: False."""
        fd = self._fd
        if fd is None:
            time.sleep(timeout)
            return False
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = io_select.select([fd], [], [], remaining)
            if readable and self._drained_ours(fd):
                return True
        return False

    def _drained_ours(self, fd: int) -> bool:
        """Read every pending event; whether one was of our files."""
        ours = False
        try:
            while data := os.read(fd, 65536):
                offset = 0
                while offset < len(data):
                    _wd, _mask, _cookie, length = self._HEADER.unpack_from(data, offset)
                    start = offset + self._HEADER.size
                    ours = ours or data[start : start + length].rstrip(b"\0") in self._names
                    offset = start + length
        except BlockingIOError:
            pass
        return ours


def _watch_sqlite_files(hub: Hub, engine: Engine) -> None:
    database = sqlite_path(engine.url.render_as_string(hide_password=False))
    if database is None:  # in memory: one process, the in-process wake-up is all there is
        hub.watching = True
        return
    paths = [database, Path(f"{database}-wal")]
    writes = _Writes(database.parent, {path.name for path in paths})
    # Open only while claims wait: asked between the looks, it tells whether another connection
    # committed since. Opened here, in the process that serves, so no fork inherits it.
    connection: Connection | None = None
    version: int | None = None  # its data_version at the last look
    latest: _Seen | None = None
    looked_at = 0.0
    while True:
        try:
            if hub.waiting == 0:
                # Nobody waits: hold no connection and sleep until a claim does, then look at
                # once — a job another process creates just as the claim begins to wait must
                # not wait for a timer.
                hub.watching = True
                hub.waiter_arrived.clear()
                if hub.waiting == 0:
                    _close(connection)
                    connection = None
                    hub.waiter_arrived.wait(SQLITE_IDLE_LOOK_S)
                continue
            if connection is None:
                connection, version = engine.connect(), None
            asked = _data_version(connection)
            if asked != version:
                version = asked
                looked_at = time.monotonic()
                kinds, latest = _queued_since(connection, latest)
                if kinds is None or kinds:
                    hub.wake(kinds)
            hub.watching = True
        except Exception:
            hub.watching = False
            _close(connection)
            connection = None
            log.exception("claim wake-up: cannot watch the SQLite store; waiting claims look again")
            time.sleep(LISTEN_RETRY_S)
        # Between writes inotify wakes the watcher: an idle claim costs one ask a second, not 100.
        writes.wait(_next_look_s(writes, paths))
        time.sleep(max(0.0, looked_at + SQLITE_LOOK_GAP_S - time.monotonic()))


def _close(connection: Connection | None) -> None:
    """Close the watcher's connection, if open."""
    if connection is not None:
        try:
            connection.close()
        except Exception:  # a connection that broke: nothing is left to release
            log.debug("claim wake-up: closing the watcher's connection failed", exc_info=True)
