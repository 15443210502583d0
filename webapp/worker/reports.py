"""The worker's reports for all its jobs, coalesced into as few requests as it can.

Every attempt's reporting thread calls `send` as it would call the single endpoint and
gets the same answer or error. Underneath, a report goes out at once when no request
is in flight; the reports that come while one is in flight wait for it and then go
together in the next batch (`POST /api/internal/reports`), sent by the first of their
threads. So nothing but a heartbeat waits for a timer (one that finds no request in
flight waits HEARTBEAT_LINGER_S for the heartbeats of the worker's other jobs, which
beat on the same grid: see attempt.next_beat), and at most one report request of the
worker is in flight at any moment. Log pieces share the batch up to LOG_BATCH_MAX_BYTES
(one at least); the rest wait for the next, while every other report goes at once: a job
printing as fast as it can never holds up a heartbeat. Each item keeps its own lease token and
gets its own answer: a `lease_lost` for one job is raised in that job's thread only. An item the
server left for later (`deferred`: its batch's time was up, nothing of it written) goes first in
the next batch.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..client import JobwardenError
from ..domain.limits import DEFERRED, LOG_BATCH_MAX_BYTES, MAX_REPORTS_PER_BATCH
from .protocol import WorkerClient, item_answer

HEARTBEAT_LINGER_S = 0.005


class _Item:
    def __init__(self, body: dict[str, Any]):
        self.body = body
        self.ready = threading.Event()  # set once: answered, or made the sender
        self.sender = False
        self.result: dict[str, Any] | None = None
        self.error: Exception | None = None


class ReportBatcher:
    def __init__(self, client: WorkerClient):
        self.client = client
        self._lock = threading.Lock()
        self._pending: list[_Item] = []
        self._sending = False  # a batch is in flight, or its sender is about to send it

    def send(self, kind: str, job_id: int, lease_token: str, **fields: Any) -> dict[str, Any]:
        """One report (start, heartbeat, step, log, complete, fail, stopped); answers as its single call would."""
        item = _Item({"kind": kind, "job_id": job_id, "lease_token": lease_token, **fields})
        with self._lock:
            self._pending.append(item)
            if not self._sending:
                self._sending = item.sender = True
        if item.sender and kind == "heartbeat":
            time.sleep(HEARTBEAT_LINGER_S)
        while item.result is None and item.error is None:  # a deferred item waits again
            if not item.sender:
                item.ready.wait()
                item.ready.clear()
            if item.sender:
                self._send_batch()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item_answer(item.result)

    def _send_batch(self) -> None:
        with self._lock:
            batch, self._pending = _within_budget(self._pending)
        try:
            results = self.client.reports([item.body for item in batch])
            if len(results) != len(batch):
                raise JobwardenError(f"the server answered {len(results)} of {len(batch)} reports")
            for item, result in zip(batch, results, strict=True):
                item.result = result
        except Exception as error:  # the batch as a whole failed: each report fails as its single call would
            for item in batch:
                item.error = error
        deferred = [item for item in batch if item.result is not None and item.result.get("error") == DEFERRED]
        answered = [item for item in batch if item not in deferred]
        with self._lock:
            self._pending[:0] = deferred
            for item in deferred:
                item.result = None
                item.sender = False
            if self._pending:  # what came in meanwhile goes next, sent by the first of its threads
                following = self._pending[0]
                following.sender = True
                following.ready.set()
            else:
                self._sending = False
        for item in answered:
            item.ready.set()


def _within_budget(pending: list[_Item]) -> tuple[list[_Item], list[_Item]]:
    """(this batch, what waits): at most MAX_REPORTS_PER_BATCH reports, and log text up to
    LOG_BATCH_MAX_BYTES (the first piece always goes); in order otherwise."""
    batch: list[_Item] = []
    waiting: list[_Item] = []
    log_chars = 0
    for item in pending:
        text = item.body.get("text") if item.body["kind"] == "log" else None
        if len(batch) >= MAX_REPORTS_PER_BATCH or (
            text is not None and log_chars and log_chars + len(text) > LOG_BATCH_MAX_BYTES
        ):
            waiting.append(item)
            continue
        if text is not None:
            log_chars += len(text)
        batch.append(item)
    return batch, waiting
