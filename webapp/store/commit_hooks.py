"""What may happen only once a transaction has committed: waking waiting claims,
counting transitions. A hook runs after the outermost commit and is dropped by a
rollback, and when the nested unit of work that registered it raised (a refused
report in a batch: see jobs.unit_of_work), so nothing counts or wakes for work
the database never kept.

No command here opens a SAVEPOINT (jobs.unit_of_work nests without one), so every
`after_commit` is the transaction's own; SQLAlchemy fires it for a released savepoint
too, and these hooks would need to tell the two apart if one were ever added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.orm import Session

from .extensions import db

_HOOKS = "jobwarden_after_commit"  # Session.info key: the hooks of the open transaction


def after_commit(hook: Callable[[], None]) -> None:
    """Run `hook` once the current transaction commits (never if it rolls back)."""
    db.session().info.setdefault(_HOOKS, []).append(hook)


@contextmanager
def dropped_if_raised() -> Iterator[None]:
    """The hooks registered in the block are dropped if it raises (its work is not kept)."""
    hooks = db.session().info.setdefault(_HOOKS, [])
    kept = len(hooks)
    try:
        yield
    except BaseException:
        del hooks[kept:]
        raise


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for hook in session.info.pop(_HOOKS, ()):
        hook()


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_HOOKS, None)
