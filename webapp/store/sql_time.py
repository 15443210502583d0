"""A timestamp column as whole microseconds since the epoch, computed by the store
and exact on both backends, so statistics bucket and average times in SQL instead
of fetching every row. (SQLite's julianday() is a float: it would put a job on the
wrong side of a bucket edge and read 90 s as 89.99998 s.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


class epoch_us(FunctionElement):  # noqa: N801  (a SQL function's name)
    """epoch_us(column): the naive-UTC timestamp column in microseconds since 1970."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_us"


@compiles(epoch_us, "sqlite")
def _sqlite(element, compiler, **kw) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff': the seconds from the first 19 characters (strftime
    # would round .999999 up to the next second), the microseconds from the text after the dot.
    column = compiler.process(element.clauses, **kw)
    seconds = f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER)"
    return f"({seconds} * 1000000 + CAST(substr({column}, 21, 6) AS INTEGER))"


@compiles(epoch_us, "postgresql")
def _postgresql(element, compiler, **kw) -> str:
    # EXTRACT gives numeric (exact) since PostgreSQL 14.
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) * 1000000 AS BIGINT)"


def microseconds(moment: datetime) -> int:
    """The same number for a Python (aware UTC) datetime."""
    return (moment - EPOCH) // MICROSECOND


class hour_of(FunctionElement):  # noqa: N801  (a SQL function's name)
    """hour_of(column): the naive-UTC timestamp column cut down to the start of its hour."""

    type = DateTime()
    inherit_cache = True
    name = "hour_of"


@compiles(hour_of, "sqlite")
def _sqlite_hour(element, compiler, **kw) -> str:
    # The stored text up to the hour, then the rest in the same format, so it compares as text.
    return f"(substr({compiler.process(element.clauses, **kw)}, 1, 13) || ':00:00.000000')"


@compiles(hour_of, "postgresql")
def _postgresql_hour(element, compiler, **kw) -> str:
    return f"date_trunc('hour', {compiler.process(element.clauses, **kw)})"
