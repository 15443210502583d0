"""SQLite writers queue for their turn, first come first served (store.write_turns): real
connections on a real file, threads and processes, no app needed. The test that it keeps a
create from starving behind workers' batches on a real gunicorn is in test_report_turns.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks._support import wait_until
from webapp.store import write_turns
from webapp.store.write_turns import TurnConnection, queue_of


def connect(path: Path, timeout: float = 30.0) -> TurnConnection:
    connection = sqlite3.connect(path, timeout=timeout, factory=TurnConnection, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    return connection


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "store.db"
    with connect(path) as connection:
        connection.execute("CREATE TABLE t (who TEXT)")
    return path


def test_writers_take_their_turns_in_the_order_they_asked(store):
    """One holds the store; five more ask one after another; each writes in the order it asked.
    SQLite's busy handler alone lets whoever retries first win."""
    holder = connect(store)
    holder.execute("BEGIN IMMEDIATE")
    queue = queue_of(str(store))
    assert queue is not None
    order: list[int] = []

    def write(n: int) -> None:
        connection = connect(store)
        connection.execute("INSERT INTO t VALUES (?)", (str(n),))
        order.append(n)
        connection.commit()
        connection.close()

    writers = []
    for n in range(5):
        last = queue.last()
        writer = threading.Thread(target=write, args=(n,))
        writer.start()
        writers.append(writer)
        wait_until(lambda last=last: queue.last() != last, timeout=10)  # it has joined the queue
    time.sleep(0.2)
    assert order == []  # all wait for the holder
    holder.commit()
    for writer in writers:
        writer.join(timeout=30)
    assert order == [0, 1, 2, 3, 4]
    holder.close()


def test_readers_do_not_queue(store):
    holder = connect(store)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES ('held')")
    reader = connect(store)
    began = time.monotonic()
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert time.monotonic() - began < 1.0
    holder.rollback()
    # The turn ended with the rollback: the next writer goes on at once.
    writer = connect(store, timeout=0.5)
    writer.execute("INSERT INTO t VALUES ('next')")
    writer.commit()
    for connection in (holder, reader, writer):
        connection.close()


def test_a_writer_killed_in_its_turn_holds_up_nobody(store):
    """The kernel frees a dead process's lock: the writer after it goes on (SQLite rolls the
    dead one's transaction back), and removes the file it left."""
    script = (
        "import sqlite3, sys, time\n"
        "from webapp.store.write_turns import TurnConnection\n"
        f"c = sqlite3.connect({str(store)!r}, factory=TurnConnection)\n"
        "c.execute(\"INSERT INTO t VALUES ('doomed')\")\n"
        "print('holding', flush=True)\n"
        "time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parent.parent
    doomed = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)}
    )
    try:
        assert doomed.stdout is not None and doomed.stdout.readline().strip() == "holding"
        queue = queue_of(str(store))
        assert queue is not None
        left = queue.directory / queue.last()
        assert left.exists()
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        doomed.kill()
    writer = connect(store, timeout=5)
    writer.execute("INSERT INTO t VALUES ('next')")
    writer.commit()
    assert writer.execute("SELECT who FROM t").fetchall() == [("next",)]
    assert not left.exists()
    writer.close()


def test_a_thread_writing_on_a_second_connection_does_not_wait_for_itself(store):
    """Its first connection holds the turn; the second does not queue behind it (that would
    never end) but meets SQLite's busy timeout, as without the queue."""
    first = connect(store)
    first.execute("INSERT INTO t VALUES ('first')")
    second = connect(store, timeout=0.2)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        second.execute("INSERT INTO t VALUES ('second')")
    first.commit()
    second.execute("INSERT INTO t VALUES ('second')")
    second.commit()
    for connection in (first, second):
        connection.close()


def test_a_turns_directory_others_can_write_is_not_used(store, tmp_path, monkeypatch):
    """Whoever can write the queue's files could make every writer wait for a lock of theirs:
    in a directory open to others, writers do not queue (SQLite's busy timeout decides)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setattr(write_turns, "TURNS_DIRECTORY", shared)
    writer = connect(store, timeout=5)
    writer.execute("INSERT INTO t VALUES ('kept')")
    writer.commit()
    assert writer.execute("SELECT who FROM t").fetchall() == [("kept",)]
    assert list(shared.iterdir()) == []
    writer.close()


def test_a_store_in_memory_has_no_queue():
    assert queue_of(":memory:") is None
    assert queue_of("file:x?mode=memory&cache=shared") is None
