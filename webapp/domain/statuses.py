"""The job state machine's vocabulary: the statuses, their sets, the edges between
them (the contract's transition table) and the refusals. No database here: the
statements that apply an edge are in `webapp.store.transitions`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.capitalize()


LIVE = frozenset({Status.CLAIMED, Status.RUNNING})
UNFINISHED = frozenset({Status.PENDING, Status.QUEUED, Status.CLAIMED, Status.RUNNING})
FINISHED = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
RECOVERABLE = frozenset({Status.FAILED, Status.CANCELLED})  # ended without completing: may run again


@dataclass(frozen=True)
class Edge:
    name: str
    sources: frozenset[Status]
    target: Status


EDGES: dict[str, Edge] = {
    edge.name: edge
    for edge in (
        Edge("force_start", frozenset({Status.PENDING, Status.FAILED, Status.CANCELLED}), Status.QUEUED),
        # Durable steps: run again keeping the completed steps' results, or discarding them.
        Edge("resume", RECOVERABLE, Status.QUEUED),
        Edge("restart", RECOVERABLE, Status.QUEUED),
        # The one edge that keeps the status: a queued job waiting for its run_after (a delay, a
        # retry's backoff) becomes due now, as a compare-and-set with its event like any move.
        Edge("run_now", frozenset({Status.QUEUED}), Status.QUEUED),
        Edge("claim", frozenset({Status.QUEUED}), Status.CLAIMED),
        Edge("start", frozenset({Status.CLAIMED}), Status.RUNNING),
        Edge("retry", LIVE, Status.QUEUED),
        Edge("complete", frozenset({Status.RUNNING}), Status.COMPLETED),
        Edge("fail", UNFINISHED, Status.FAILED),
        Edge("cancel", UNFINISHED, Status.CANCELLED),
    )
}

# The contract's table as (from, to) pairs of a status change; anything else is refused.
ALLOWED: frozenset[tuple[Status, Status]] = frozenset(
    (source, edge.target) for edge in EDGES.values() for source in edge.sources if source != edge.target
)


def edges_from(status: str) -> list[str]:
    """Names of the transitions the state machine allows from `status`."""
    return [edge.name for edge in EDGES.values() if status in edge.sources]


class JobNotFound(LookupError):
    def __init__(self, job_id: int):
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class TransitionRefused(Exception):
    """Nothing changed: the job's current status does not allow the move."""

    def __init__(self, job_id: int, action: str, status: str):
        super().__init__(f"refused: current status is {status}")
        self.job_id = job_id
        self.action = action
        self.status = status


class LeaseLost(TransitionRefused):
    """The caller's lease token is no longer current: the job moved on without it."""

    def __init__(self, job_id: int, action: str, status: str):
        super().__init__(job_id, action, status)
        self.args = (f"lease lost: current status is {status}",)
