"""Every SQLite writer waits for its turn in one queue, first come first served.

SQLite has one write lock and no queue for it: a writer that finds it taken sleeps in
SQLite's busy handler (1, 2, 5 … up to 100 ms between tries), and whoever tries first when
it comes free wins. Workers' report batches sent back to back won that race again and
again: another client's create waited 3.3 s on a quiet machine and 17 s at load 6
(docs/reliability.md, "Hardening probes").

So every connection the app opens to a SQLite file (`TurnConnection`, given to sqlite3 as
its connection factory) joins one queue just before its write transaction begins and
leaves it when the transaction ends (commit, rollback, close, or its process's death).
The queue is shared by the server's threads, gunicorn's processes and the CLI: a CLH
queue of lock files in a private directory of /dev/shm or the temporary directory (nothing
is created beside the store).
A newcomer holds a lock on a file of its own, writes that file's name as the queue's tail
(under a short lock of the tail file) and waits for the lock of the file it found there,
which the writer before it holds until its transaction ends. Each waits only for the one
before it, so nobody overtakes, and nobody polls. A writer therefore waits for the
transactions queued before it, each short: a report batch's work is capped by
`limits.REPORT_BATCH_BUDGET_S`, and by `limits.REPORT_BATCH_SHARE_S` once another writer
queues behind it (`others_waiting`). Report batches first queue among themselves
(`batch_turn`, a second queue of the same kind), so at most one is in the writers' queue:
with every worker's batch in it, a create (two transactions: the change, then its audit
row) waited behind each of them twice, 1.0–1.3 s behind 3 senders at load 8.

The queue only orders who asks for SQLite's lock; the lock still decides. A writer outside
the queue (another program) is met by the busy timeout, as before. Readers never queue
(WAL lets them read beside the writer). PostgreSQL locks rows, not the database: no queue.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import sqlite3
import stat
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .extensions import db

# What begins a write transaction, or writes: pysqlite opens a transaction before
# INSERT, UPDATE, DELETE and REPLACE; the app opens its own with BEGIN IMMEDIATE.
_WRITES = re.compile(
    r"\s*(?:INSERT|UPDATE|DELETE|REPLACE|BEGIN|SAVEPOINT|CREATE|DROP|ALTER"
    r"|WITH\b.*\b(?:INSERT|UPDATE|DELETE|REPLACE)\b)",
    re.IGNORECASE | re.DOTALL,
)

NAME_LENGTH = len(uuid.uuid4().hex)  # a writer's file is named by a fresh uuid
# Memory, where the system has it: creating and removing a file per transaction on a disk
# under load took milliseconds. One directory per user, private: another user able to write
# a queue's files could make every writer wait for a lock of theirs.
TURNS_DIRECTORY = (Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())) / (
    f"jobwarden-turns-{os.geteuid()}"
)
_holders: set[int] = set()  # the threads that hold a turn (each at most one, on any of their connections)


def turns_needed() -> bool:
    """Whether the store has one write lock for all (SQLite), so writers queue and batches are cut short."""
    return db.engine.dialect.name == "sqlite"


class TurnQueue:
    """The queue of one store's writers: lock files in a directory of the temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.tail = directory / "tail"

    def join(self) -> IO[str]:
        """Wait for this writer's turn; the open file returned holds it until `leave`."""
        _private(TURNS_DIRECTORY)
        self.directory.mkdir(mode=0o700, exist_ok=True)
        mine = open(self.directory / uuid.uuid4().hex, "w")  # noqa: SIM115 (held for the turn)
        fcntl.flock(mine, fcntl.LOCK_EX)
        try:
            tail = os.open(self.tail, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            self.leave(mine)
            raise
        try:
            fcntl.flock(tail, fcntl.LOCK_EX)
            before = os.pread(tail, NAME_LENGTH, 0).decode()
            os.pwrite(tail, Path(mine.name).name.encode(), 0)  # every name is as long: no truncating
        finally:
            os.close(tail)
        if before:
            _wait_for(self.directory / before)
        return mine

    def last(self) -> str:
        """The name of the last writer in the queue."""
        tail = os.open(self.tail, os.O_RDONLY)
        try:
            fcntl.flock(tail, fcntl.LOCK_SH)
            return os.pread(tail, NAME_LENGTH, 0).decode()
        finally:
            os.close(tail)

    @staticmethod
    def leave(mine: IO[str]) -> None:
        """End the turn: the writer after this one goes on."""
        Path(mine.name).unlink(missing_ok=True)
        mine.close()


def _wait_for(ahead: Path) -> None:
    """Until the writer ahead has left (its lock is free), then remove its file: a writer that
    died (its lock freed by the kernel) leaves its file behind, and this is its successor."""
    try:
        with open(ahead) as file:
            fcntl.flock(file, fcntl.LOCK_SH)
    except FileNotFoundError:
        return  # it has left already
    ahead.unlink(missing_ok=True)


@contextmanager
def batch_turn() -> Iterator[None]:
    """Hold the report batches' turn (on SQLite) around a batch's transaction: one batch at a
    time queues for the store's write turn, so another writer waits behind one batch, not one
    per worker."""
    queue = queue_of(db.engine.dialect.create_connect_args(db.engine.url)[0][0], "batches") if turns_needed() else None
    try:
        turn = queue.join() if queue is not None else None
    except OSError:
        turn = None  # not this user's directory: the batch queues with the other writers only
    try:
        yield
    finally:
        if turn is not None:
            TurnQueue.leave(turn)


def others_waiting() -> bool:
    """Inside a write transaction: whether another writer queues for its turn behind this one."""
    connection = db.session.connection().connection.dbapi_connection
    return isinstance(connection, TurnConnection) and connection.others_waiting()


def _private(directory: Path) -> None:
    """Make `directory` this user's alone, or raise OSError if someone else's is in the way."""
    directory.mkdir(mode=0o700, exist_ok=True)
    found = directory.lstat()
    if found.st_uid != os.geteuid() or not stat.S_ISDIR(found.st_mode) or found.st_mode & 0o077:
        raise PermissionError(f"{directory} is not this user's private directory: writers do not queue")


def queue_of(database: str, kind: str = "writers") -> TurnQueue | None:
    """The queue of `kind` of the SQLite store `database` names (as given to sqlite3.connect),
    or None for a store of one connection (in memory, or a temporary one)."""
    if database in {"", ":memory:"} or "mode=memory" in database:
        return None
    name = database if database.startswith("file:") else os.path.realpath(database)
    store = hashlib.sha256(name.encode()).hexdigest()[:16]
    return TurnQueue(TURNS_DIRECTORY / f"{kind}-{store}")


class TurnCursor(sqlite3.Cursor):
    """Takes its connection's turn before a statement that writes outside a transaction."""

    connection: TurnConnection

    def execute(self, sql: str, parameters: Any = (), /) -> TurnCursor:
        self.connection.before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.after()

    def executemany(self, sql: str, parameters: Any, /) -> TurnCursor:
        self.connection.before(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            self.connection.after()


class TurnConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions wait for their turn in the store's queue."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._queue = queue_of(str(database))
        self._turn: IO[str] | None = None
        self._holder = 0  # the thread that took the turn (a connection may be closed by another)

    def cursor(self, factory: Any = TurnCursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)

    def before(self, sql: str) -> None:
        """Join the queue when `sql` is about to begin a write transaction."""
        if self._queue is None or self._turn is not None or self.in_transaction or not _WRITES.match(sql):
            return
        thread = threading.get_ident()
        if thread in _holders:
            # This thread holds a turn on another connection: waiting in the queue behind it
            # would wait for itself. SQLite's busy timeout decides, as without the queue.
            return
        try:
            self._turn = self._queue.join()
        except OSError:
            # The queue's directory is not this user's (another user's server on the same store):
            # SQLite's busy timeout decides, as without the queue.
            return
        self._holder = thread
        _holders.add(thread)

    def others_waiting(self) -> bool:
        """Whether this connection holds its turn and another writer has joined the queue since."""
        return self._turn is not None and self._queue is not None and self._queue.last() != Path(self._turn.name).name

    def after(self) -> None:
        """Leave the queue once no transaction is open (a statement that committed itself, or failed)."""
        if self._turn is not None and not self.in_transaction:
            self._leave()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.after()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.after()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._turn is not None:
                self._leave()

    def _leave(self) -> None:
        assert self._turn is not None
        TurnQueue.leave(self._turn)
        self._turn = None
        _holders.discard(self._holder)
