"""psycopg keeps the parsed form of our long statements, as it does of short ones.

Before each execution psycopg turns SQLAlchemy's `%(name)s` placeholders into PostgreSQL's
`$n`, with a regular expression over the whole statement, and caches the result (an LRU of 128)
only for statements of at most 4,096 bytes (`MAX_CACHED_STATEMENT_LENGTH`): its guard against
ORMs' one-off multi-row INSERTs. Every statement of the state machine is one shape built once
(webapp.store.transitions), yet the claim (4.2 KB) and a worker's batch of completes with its
webhook outbox CTEs (5.2 KB) were over the limit: each execution parsed again, 0.4-0.5 ms of the
server's CPU apiece, some 80 µs per job claimed and completed. Keeping statements under 4 KiB
one by one (c99f7d6 did for the outbox) lasts until the next column.

So the limit is raised to LONGEST_CACHED_STATEMENT. psycopg's other guard stays: a statement of
more than 50 parameters (an IN list of ids, a multi-row VALUES: a shape per length) is still
parsed each time and never crowds the cache. The LRU's 128 entries of at most 16 KiB each bound
what it holds.

psycopg has no public setting for this; the module attribute is read at each execution.
tests/test_parsed_statements.py fails if a worker's claim or reports parse again.
"""

from __future__ import annotations

from psycopg import _queries

LONGEST_CACHED_STATEMENT = 16 * 1024


def keep_long_statements_parsed() -> None:
    """Raise psycopg's cached-statement length (process-wide; never lowers it)."""
    # A psycopg without the limit (nor the attribute) caches every statement.
    current = getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", LONGEST_CACHED_STATEMENT)
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(current, LONGEST_CACHED_STATEMENT)
