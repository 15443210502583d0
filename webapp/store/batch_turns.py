"""Report batches take turns on SQLite, and leave the write lock free after a long one.

SQLite has one write lock and no queue for it: a writer that finds it taken sleeps in
SQLite's busy handler, longer each time (1, 2, 5 … up to 100 ms between tries), while a
fresh batch tries at once. With a few workers sending maximal batches back to back,
another client's create lost that race again and again: it waited 11 s behind 4 senders
(docs/reliability.md, "Hardening probes"). So batches go one at a time (an flock, across
the server's processes and threads), and one whose work took long keeps its turn, outside
its transaction, for longer than the busy handler's longest sleep: every waiting writer
tries within that gap and gets the lock. A batch's work is capped by
`limits.REPORT_BATCH_BUDGET_S` (the rest deferred to its next batch), so another writer
waits about one batch and one gap. PostgreSQL locks rows, not the database: nothing
to do there.
"""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..domain.limits import REPORT_BATCH_BUDGET_S
from .extensions import db

# SQLite's default busy handler sleeps at most 100 ms between two tries.
GAP_AFTER_LONG_BATCH_S = 0.12
# A batch that used its whole budget leaves the gap after it; a short one (a worker's
# starts or completes, a few ms) does not pay for it.
LONG_BATCH_S = REPORT_BATCH_BUDGET_S


def turns_needed() -> bool:
    """Whether the store has one write lock for all (SQLite), so batches take turns and are cut short."""
    return db.engine.dialect.name == "sqlite"


@contextmanager
def batch_turn() -> Iterator[None]:
    """Hold the store's turn for one report batch (its transaction inside the block)."""
    if not turns_needed():
        yield
        return
    with _turn_file().open("a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        began = time.monotonic()
        yield
        if time.monotonic() - began >= LONG_BATCH_S:
            time.sleep(GAP_AFTER_LONG_BATCH_S)


def _turn_file() -> Path:
    """A lock file of this store in the temporary directory: nothing is created beside the store."""
    store = hashlib.sha256(db.engine.url.render_as_string(hide_password=False).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"jobwarden-batches-{store}.lock"
