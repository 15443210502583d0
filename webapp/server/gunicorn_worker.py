"""Gunicorn's threaded worker (gthread) with its quick shutdown entered once.

Ctrl-C in a terminal signals the whole process group: each worker gets SIGINT from the
terminal and, a moment later, SIGQUIT from the master. gthread's quit handler shuts its
thread pool down under the pool's lock, which is not reentrant: the second signal, handled
while the first handler held that lock, re-entered the handler, waited for the lock its own
thread held, and hung the worker until the master killed it `graceful_timeout` later
("Worker (pid:…) was sent SIGKILL! Perhaps out of memory?"). It hung 1 stop in 6 to 12 of a
server that had served requests (tests/test_serve_shutdown.py).
"""

from __future__ import annotations

from types import FrameType

from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker


class QuitOnceThreadWorker(ThreadWorker):
    _quitting = False

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        if self._quitting:
            return  # the first signal's handler is already stopping this worker
        self._quitting = True
        if self.tpool is None:  # still booting: no thread pool to stop yet
            Worker.handle_quit(self, sig, frame)
        else:
            super().handle_quit(sig, frame)
