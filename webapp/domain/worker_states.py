"""A worker's state in the registry, and how the dashboard says it.

`alive` while it beats; `gone` when it died (its connection dropped without a goodbye,
or its heartbeats stopped); `stopped` once it said goodbye on a clean stop."""

from __future__ import annotations

from enum import StrEnum


class WorkerState(StrEnum):
    ALIVE = "alive"
    GONE = "gone"
    STOPPED = "stopped"

    @property
    def label(self) -> str:
        return {WorkerState.ALIVE: "alive", WorkerState.GONE: "dead", WorkerState.STOPPED: "stopped cleanly"}[self]


WORKER_STATE_LABELS = {state.value: state.label for state in WorkerState}
