"""A bound on the database time of every read request (GET, HEAD).

Whatever a query string asks for, a read may not hold the database longer than
JOBWARDEN_QUERY_TIMEOUT_S: on PostgreSQL each statement of the request's
transaction runs under `SET LOCAL statement_timeout`; on SQLite a progress
handler interrupts the transaction past its deadline. A request cut this way
answers 400 ("narrow the query"), not 503: the database is fine, the request
was too expensive. Writes are short compare-and-sets and are not cut midway.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, cast

from flask import current_app, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction

READS = ("GET", "HEAD")
SQLITE_CHECK_EVERY = 10_000  # virtual-machine instructions between deadline checks
MESSAGE = "the query took more than JOBWARDEN_QUERY_TIMEOUT_S ({bound:g} s) of database time; narrow it"


def install(session_factory: Any) -> None:
    """Bound every transaction the app's session begins during a read request."""
    if not event.contains(session_factory, "after_begin", _bound_transaction):
        event.listen(session_factory, "after_begin", _bound_transaction)


def _bound_transaction(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    reading = has_request_context() and request.method in READS
    dialect = connection.dialect.name
    if dialect == "sqlite":
        raw = cast(sqlite3.Connection, connection.connection.driver_connection)
        if not reading:
            raw.set_progress_handler(None, 0)
            return
        deadline = time.monotonic() + current_app.config["JOBWARDEN_QUERY_TIMEOUT_S"]
        raw.set_progress_handler(lambda: time.monotonic() > deadline, SQLITE_CHECK_EVERY)
    elif dialect == "postgresql" and reading:
        milliseconds = max(1, int(current_app.config["JOBWARDEN_QUERY_TIMEOUT_S"] * 1000))
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")


def was_cut(error: Exception) -> bool:
    """True when a database error is this module's bound, not an outage."""
    cause = getattr(error, "orig", None)
    if isinstance(cause, sqlite3.OperationalError):
        return str(cause) == "interrupted"
    return getattr(cause, "sqlstate", None) == "57014" and "statement timeout" in str(cause)


def message() -> str:
    return MESSAGE.format(bound=current_app.config["JOBWARDEN_QUERY_TIMEOUT_S"])
