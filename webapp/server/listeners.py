"""Who listens to the store's moves (`webapp.store.moves`): the webhook outbox, the
transition counter of /metrics, and the wake-up of waiting claims. `create_app`
installs them, so every process that moves jobs (a server, the monitor, the command
line) notifies, counts and wakes alike."""

from __future__ import annotations

from functools import partial

from ..domain.statuses import FINISHED, Status
from ..metrics import TRANSITIONS
from ..store import flow, moves
from ..store.commit_hooks import after_commit
from ..store.wakeup import announce_claimable, wake_here_after_commit
from ..webhooks.outbox import TransitionOutbox


def count_transition(move: moves.Move) -> None:
    """`jobwarden_transitions_total`, counted once the move commits."""
    after_commit(partial(TRANSITIONS.labels(move.action, move.to_status).inc, move.count))


def wake_waiting_claims(move: moves.Move) -> None:
    """Jobs became claimable: as many waiting claims as there are jobs (of claims that take
    their type and queue) look again once it commits, on every replica. A job that finished
    may have freed a limited queue's slot for a job of any type (webapp.store.flow): all of
    this process's claims look; other processes are told by the finishing statement itself
    (`flow.freed_slot_notice`, PostgreSQL) or see it by their recheck (SQLite)."""
    if move.to_status == Status.QUEUED:
        # A statement that notified other processes itself (a job's create) leaves only this one's.
        (wake_here_after_commit if move.notified else announce_claimable)(move.kinds)
    elif move.to_status in FINISHED and flow.limits_in_use():
        wake_here_after_commit()


def listen_to_moves() -> None:
    moves.set_outbox(TransitionOutbox())
    moves.on_move(count_transition)
    moves.on_move(wake_waiting_claims)
