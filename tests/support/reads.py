"""What a statement read of `jobs` on PostgreSQL, counted rather than timed: the index entries
its scans returned from each index of `jobs`, and the rows its scans of the table returned, so
far in the current transaction (the statistics PostgreSQL keeps per transaction; there is no
pg_stat_xact view for indexes)."""

from __future__ import annotations

from sqlalchemy import text

from webapp.store.extensions import db

_JOBS_ENTRIES_READ = text(
    "SELECT pg_stat_get_xact_tuples_returned('jobs'::regclass)"
    " + (SELECT sum(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index WHERE indrelid = 'jobs'::regclass)"
)


def jobs_entries_read() -> int:
    """Index entries and table rows of `jobs` read so far in this session's transaction."""
    return int(db.session.execute(_JOBS_ENTRIES_READ).scalar_one())
