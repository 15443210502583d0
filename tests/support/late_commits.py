"""A process that creates jobs on command, in the shapes the store's commits take, its commits
showing late when asked: the SQLite watcher's tests (tests/test_wakeup_sqlite_watch.py).

Run as `python -m tests.support.late_commits DATABASE_URL`; each line on stdin is a shape and a
delay in seconds, and each create answers `done` on stdout once its commit has returned.

The delay is that of a loaded machine: SQLite writes a commit's frames to the WAL (which
inotify hears), then syncs the WAL and updates the shared index, and only then do other
connections see the commit. A writer descheduled, or waiting for a slow disk, in between
shows its commit tens of milliseconds after its write (31-45 ms measured with two busy
processes on the 2-core box). Here the writer sleeps there: SQLite lets a program replace the
system calls of its unix VFS (`xSetSystemCall`), and the `pwrite` of a commit frame's page
sleeps after writing. Reached through ctypes, which loads the library Python's sqlite3 module
uses; `hooked` answers whether it took (not where that module carries SQLite of its own).
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from typing import Any

FRAME_HEADER_BYTES = 24  # a WAL frame's header; bytes 4-7: the database's size after a commit, else 0
WRITE = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_longlong)
SET_CALL = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
GET_CALL = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)
VFS_METHODS = (
    "xOpen",
    "xDelete",
    "xAccess",
    "xFullPathname",
    "xDlOpen",
    "xDlError",
    "xDlSym",
    "xDlClose",
    "xRandomness",
    "xSleep",
    "xCurrentTime",
    "xGetLastError",
    "xCurrentTimeInt64",
)


class Vfs(ctypes.Structure):
    """sqlite3_vfs up to its version 3 members (sqlite3.h)."""

    _fields_ = [
        ("iVersion", ctypes.c_int),
        ("szOsFile", ctypes.c_int),
        ("mxPathname", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("zName", ctypes.c_char_p),
        ("pAppData", ctypes.c_void_p),
        *[(name, ctypes.c_void_p) for name in VFS_METHODS],
        ("xSetSystemCall", SET_CALL),
        ("xGetSystemCall", GET_CALL),
        ("xNextSystemCall", ctypes.c_void_p),
    ]


class LateCommits:
    """Makes every commit of this process show `delay_s` after its WAL write."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.delayed = 0  # commits delayed so far
        self._commit_frame = False
        self._kept: list[Any] = []  # the callbacks SQLite holds
        library = ctypes.CDLL("libsqlite3.so.0")
        library.sqlite3_vfs_find.restype = ctypes.POINTER(Vfs)
        library.sqlite3_vfs_find.argtypes = [ctypes.c_char_p]
        vfs = library.sqlite3_vfs_find(None).contents
        for name in (b"pwrite64", b"pwrite"):
            original = vfs.xGetSystemCall(ctypes.addressof(vfs), name)
            if original:
                hook = WRITE(self._writer(WRITE(original)))
                self._kept.append(hook)
                vfs.xSetSystemCall(ctypes.addressof(vfs), name, ctypes.cast(hook, ctypes.c_void_p))

    def _writer(self, original: Any) -> Any:
        def write(fd: int, buffer: int, count: int, offset: int) -> int:
            written = original(fd, buffer, count, offset)
            if self.delay_s and os.readlink(f"/proc/self/fd/{fd}").endswith("-wal"):
                if count == FRAME_HEADER_BYTES:
                    self._commit_frame = ctypes.string_at(buffer, 8)[4:] != b"\0\0\0\0"
                elif self._commit_frame:  # the commit frame's page: written, the commit not yet seen
                    self._commit_frame = False
                    self.delayed += 1
                    time.sleep(self.delay_s)
            return int(written)

        return write


def main(database_url: str) -> None:
    from sqlalchemy.pool import QueuePool

    from webapp import create_app, jobs
    from webapp.jobs import audit

    from tests.conftest import test_config

    late = LateCommits()
    app = create_app(test_config(database_url))
    # The plain sqlite3 module, no connection factory of the app's, and a connection that stays
    # open after its commit: no close follows the commit for the watcher to hear.
    kept_open = create_app(
        test_config(database_url, SQLALCHEMY_ENGINE_OPTIONS={"poolclass": QueuePool, "connect_args": {"timeout": 30}})
    )
    person = {"actor": "user:pia", "via": "token:test", "action": "jobs create"}
    for line in sys.stdin:
        shape, delay = line.split()
        late.delay_s = float(delay)
        delayed = late.delayed
        with (kept_open if shape == "kept-open" else app).app_context():
            if shape == "create" or shape == "kept-open":  # one transaction
                jobs.create_job(type="demo.noop")
            elif shape == "create+audit":  # the job, then its audit row: two transactions (as on SQLite)
                jobs.create_job(type="demo.noop")
                audit.record(**person)
            elif shape == "create-with-audit":  # one transaction with the audit row (as on PostgreSQL)
                jobs.create_job_once(type="demo.noop", audit_entry=audit.entry(**person))
            else:
                raise ValueError(f"no such shape: {shape}")
        print("done", "hooked" if late.delayed > delayed or not late.delay_s else "unhooked", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
