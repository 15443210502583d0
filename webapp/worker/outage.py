"""Whether the server answers, as the whole worker sees it: one line when an outage
begins, one when the server really answers again.

The claim loop, the worker's heartbeat and every attempt's reporting thread talk to
the same server, and each retries on its own backoff when it is gone. An operator
reading the log in an incident needs the story, not each thread's every retry: the
first failure after an answer says the outage began (WARNING), the first real answer
after it says it ended and how long it lasted (INFO). Only a request the server
answered ends an outage — a loop that merely had nothing to send proves nothing.
Each retry is still logged, at DEBUG, with the delay its backoff chose.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


class ServerOutage:
    """Shared by a worker's threads; safe to call from any of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic time of the first failure, None while the server answers

    def unreachable(self, who: str, error: Exception, retry_in: float) -> None:
        """`who` (e.g. "job 7", "claims") found the server unreachable and retries after `retry_in` s."""
        with self._lock:
            began = self._since is None
            if began:
                self._since = time.monotonic()
        if began:
            log.warning("server unreachable (%s): running jobs go on; %s retrying in %.1f s", error, who, retry_in)
        else:
            log.debug("%s: server still unreachable (%s); retrying in %.1f s", who, error, retry_in)

    def answered(self) -> None:
        """A request got the server's answer (any answer: a refusal is an answer too)."""
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            log.info("the server answers again, after %.1f s unreachable", time.monotonic() - since)
