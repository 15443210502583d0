"""What statements read, counted rather than timed.

PostgreSQL: the index entries the scans of `jobs` returned from each of its indexes, and the
rows its scans of the table returned, so far in the current transaction (the statistics
PostgreSQL keeps per transaction; there is no pg_stat_xact view for indexes).
SQLite: the virtual machine's instructions each statement ran, in thousands (its progress
handler), which grow with the rows it reads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, text

from webapp.store.extensions import db

_JOBS_ENTRIES_READ = text(
    "SELECT pg_stat_get_xact_tuples_returned('jobs'::regclass)"
    " + (SELECT sum(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index WHERE indrelid = 'jobs'::regclass)"
)


def jobs_entries_read() -> int:
    """Index entries and table rows of `jobs` read so far in this session's transaction."""
    return int(db.session.execute(_JOBS_ENTRIES_READ).scalar_one())


@contextmanager
def sqlite_steps() -> Iterator[Counter[str]]:
    """Thousands of SQLite VM instructions each statement the engine runs in the block ran, by its text."""
    counted: Counter[str] = Counter()
    running = [""]

    def count() -> int:
        counted[running[0]] += 1
        return 0  # go on

    def watch(connection, _cursor, statement, _parameters, _context, _executemany) -> None:
        running[0] = statement
        connection.connection.dbapi_connection.set_progress_handler(count, 1_000)

    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        yield counted
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
