"""The worker's side of a lease (webapp.store.leases): when the job must have stopped if the
server cannot be reached to renew it.

Standard library only: the worker runs without Flask. Counted on the monotonic clock,
which on Linux is one clock for every process of the machine, so a command's supervisor
can be handed the same deadline (webapp/worker/supervisor.py) and hold it when the
worker itself is frozen.
"""

from __future__ import annotations

import threading
import time

MIN_MARGIN_S = 0.2


def margin_s(lease_s: float) -> float:
    """How much earlier than the server the worker counts its lease out: a tenth of it, at
    least 0.2 s (the claim answer's way back to the worker, a late tick, the kill itself)."""
    return max(MIN_MARGIN_S, lease_s / 10)


def stop_lead_s(lease_s: float, kill_grace: float) -> float:
    """How long before the lease's end the worker stops the job (SIGTERM), so a command gets
    its kill grace before the supervisor's SIGKILL at the end — at most half of what is left
    of the lease, so a short lease still lets the job run between heartbeats."""
    return min(kill_grace, (lease_s - margin_s(lease_s)) / 2)


class LeaseClock:
    """One attempt's lease: `until` is the monotonic time by which its processes must be dead.

    A claim's lease counts from the answer's arrival (the server granted it an instant
    before answering; the margin covers the answer's way back); a renewal counts from when
    its request was sent, before the server granted it. None: the server granted no lease.
    """

    def __init__(self, lease_s: float | None, received_at: float):
        self.lease_s = lease_s if lease_s and lease_s > 0 else None
        self._lock = threading.Lock()
        self.until: float | None = None
        if self.lease_s is not None:
            self.until = received_at + self.lease_s - margin_s(self.lease_s)

    def renewed(self, sent_at: float) -> float | None:
        """The server renewed the lease on a request sent at `sent_at`; the new `until`."""
        if self.lease_s is None:
            return None
        with self._lock:
            candidate = sent_at + self.lease_s - margin_s(self.lease_s)
            if self.until is None or candidate > self.until:
                self.until = candidate
            return self.until

    def remaining(self, now: float | None = None) -> float | None:
        if self.until is None:
            return None
        return self.until - (time.monotonic() if now is None else now)
