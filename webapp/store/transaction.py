"""One transaction per command: what every job command here runs inside.

A command that is one statement runs it in autocommit on PostgreSQL (`one_statement`): the
statement is then its own transaction, atomic and committed when it returns. psycopg outside
autocommit sends BEGIN before the first statement and COMMIT after it as round trips of their
own, so a one-statement transaction cost three round trips where one does; a pickup crosses
three such commands (the create, its audit entry, the claim that starts the job).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from sqlalchemy import CursorResult, Result
from sqlalchemy.orm import Session

from .commit_hooks import dropped_if_raised
from .dialects import on_postgresql
from .extensions import db

_OPEN = "jobwarden_unit_of_work"  # Session.info key: a unit of work is open


@contextmanager
def unit_of_work(*, one_statement: bool = False) -> Iterator[None]:
    """Commit what the block did, or roll all of it back if it raised.

    `one_statement`: the block runs exactly one statement (a second would commit apart
    from the first, and one that raised would keep what the first did), or calls
    `one_transaction_from_here` before any statement that must share a transaction. On
    PostgreSQL it then runs in autocommit, without BEGIN and COMMIT; on SQLite, and when the
    block joins a transaction already open, as any other block.

    Nestable: inside another unit of work (a batch of worker reports) the block joins
    the outer transaction, and the outermost unit commits once for all: a batch waits
    for one commit, not one per report. A nested block must refuse before it writes —
    every worker report does, its first write being the fenced compare-and-set that
    either moves the row or changes nothing — so a refused report leaves nothing to
    undo and needs no SAVEPOINT (two round trips per report, a third of a batch's
    time). tests/test_api_internal.py holds every report kind to that rule.
    """
    session = db.session()
    if session.info.get(_OPEN):
        _open_sqlite_transaction(session)
        with dropped_if_raised():
            yield
        return
    session.info[_OPEN] = True
    try:
        if one_statement and not session.in_transaction():
            _autocommit_on_postgresql(session)
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        del session.info[_OPEN]


def _autocommit_on_postgresql(session: Session) -> None:
    """The session's connection for this transaction runs each statement as its own
    transaction. Setting it sends nothing (psycopg's `autocommit` is a client-side mode), the
    session's commit then has nothing to send, and the pool restores the engine's isolation
    level, again without a round trip, when the connection goes back to it."""
    if on_postgresql():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def each_statement_commits() -> bool:
    """Inside a unit of work: whether each statement is its own transaction (a `one_statement`
    unit in autocommit on PostgreSQL), so that none holds a lock past its own end."""
    connection = db.session().connection()
    if connection.dialect.name != "postgresql":
        return False
    return cast(psycopg.Connection[Any], connection.connection.dbapi_connection).autocommit


def one_transaction_from_here() -> None:
    """Inside a unit of work: the statements from here to its end are one transaction. A
    `one_statement` unit that runs in autocommit leaves it (the statements before, each
    committed on its own, must have written nothing the rest could need to undo); any other
    unit is one transaction already. Leaving autocommit sends nothing: psycopg sends BEGIN
    before the next statement."""
    connection = db.session().connection()
    if connection.dialect.name != "postgresql":
        return
    dbapi_connection = cast(psycopg.Connection[Any], connection.connection.dbapi_connection)
    if dbapi_connection.autocommit:
        dbapi_connection.autocommit = False


def take_the_write_lock() -> None:
    """Inside a unit of work: on SQLite, wait for the write lock now (a no-op on PostgreSQL),
    so what follows is timed from when it holds the lock."""
    _open_sqlite_transaction(db.session())


def _open_sqlite_transaction(session: Session) -> None:
    """Open the batch's transaction for writing at once (IMMEDIATE): pysqlite would open
    it only before the first write, and a transaction that read first and is upgraded
    later can fail on a concurrent writer instead of waiting for it."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    if not cast(sqlite3.Connection, connection.connection.dbapi_connection).in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def as_committed() -> Iterator[None]:
    """Objects keep the values their command committed, for an answer that reports them.

    A commit expires every loaded object, and reading one reloads it: a resumed job
    could then come back already `claimed` by a worker that woke on the commit. Read
    them inside the block: at its end every object is expired, as a commit leaves it.
    """
    session = db.session()
    session.expire_on_commit = False
    try:
        yield
    finally:
        session.expire_on_commit = True
        session.expire_all()


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (its `rowcount`, which only a cursor result has)."""
    return cast(CursorResult[Any], result).rowcount
