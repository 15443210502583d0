"""What a transition announces, and who listens.

The store moves jobs; webhooks, metrics and the wake-up of waiting claims care that
it did. They subscribe here (`webapp.server.listeners` does it when the app is built)
instead of the state machine importing them, which had made one import cycle of 14
modules. Two kinds of listener:

- `on_move`: told after each statement that moved jobs, in the mover's transaction
  (a listener that must wait for the commit defers itself with `after_commit`);
- the `Outbox`: writes a transition's notification with the transition itself, as a
  further CTE of its one statement on PostgreSQL and as a statement after it on
  SQLite, so the notification commits or rolls back with the change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..domain.statuses import Status

if TYPE_CHECKING:
    from sqlalchemy import BindParameter, UpdateBase
    from sqlalchemy.sql.selectable import NamedFromClause

    from .models import Job, JobRow


Kinds = Mapping[tuple[str, str], int]  # how many of the moved jobs are of each (type, queue)


@dataclass(frozen=True)
class Move:
    """`count` jobs took the edge `action` to `to_status` in one statement; `kinds` says of
    which type and queue (so a wake-up can wake only the claims that take them)."""

    action: str
    to_status: Status
    count: int = 1
    kinds: Kinds = field(default_factory=dict)
    notified: bool = False  # the statement sent other processes' wake-up itself (PostgreSQL's NOTIFY)


MoveListener = Callable[[Move], None]


class Outbox(Protocol):
    def event(self, action: str, from_status: Status, to_status: Status, actor: object) -> str | None:
        """The notification a transition raises, or None."""

    def params(self, event: str) -> dict[str, Any]:
        """Bound parameters of `followup` for `event`."""

    def followup(self, rows: NamedFromClause, now: BindParameter[Any]) -> UpdateBase:
        """PostgreSQL: the notification of each moved row, to run as a CTE of the transition."""

    def write(self, event: str, job: Job, now: datetime) -> None:
        """SQLite: the notification of one moved job, after the transition's statements."""


_listeners: list[MoveListener] = []
_outbox: Outbox | None = None


def on_move(listener: MoveListener) -> None:
    """Subscribe `listener` to every move (once, however often the app is built)."""
    if listener not in _listeners:
        _listeners.append(listener)


def set_outbox(outbox: Outbox | None) -> None:
    """The outbox transitions write their notifications to (None: they write none)."""
    global _outbox
    _outbox = outbox


def outbox() -> Outbox | None:
    return _outbox


def announce(action: str, to_status: Status, jobs: Sequence[Job | JobRow], *, notified: bool = False) -> None:
    """`jobs` moved by one statement (each has its `type` and `queue`); `notified`: that statement
    notified waiting claims of other processes itself."""
    move = Move(action, to_status, len(jobs), Counter((job.type, job.queue) for job in jobs), notified)
    for listener in _listeners:
        listener(move)
