"""One transaction per command: what every job command here runs inside."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, Result

from ..extensions import db


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit what the block did, or roll all of it back if it raised."""
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


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
