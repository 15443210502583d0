"""Gunicorn's threaded worker (gthread) with a quick shutdown that cannot deadlock.

gthread's quit handler (SIGQUIT, SIGINT) shuts its thread pool down, under the pool's lock,
from inside the signal handler. That lock is not reentrant, and the main thread holds it
whenever it hands a request to the pool (`submit`): a signal handled just then waited for its
own thread's lock. So did a second signal handled while the first handler held it, and Ctrl-C
in a terminal sends two (SIGINT from the terminal to the whole process group, then SIGQUIT
from the master). Either way the worker hung until the master killed it `graceful_timeout`
later ("Worker (pid:…) was sent SIGKILL! Perhaps out of memory?"): 1 stop in 6 to 12 of a
server that had served requests.

Here the handler leaves the pool alone: the exit that follows it 0.1 s later stops every
pool anyway (concurrent.futures' own exit hook), outside any signal handler
(tests/test_serve_shutdown.py).

Either stop, quick or graceful (SIGTERM), first answers the requests the server holds open
(webapp.server.held_requests): held, they kept the process for their 20 s.
"""

from __future__ import annotations

from types import FrameType

from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker

from . import held_requests


class QuitSafelyThreadWorker(ThreadWorker):
    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        held_requests.release_all()
        Worker.handle_quit(self, sig, frame)  # gthread's, less the pool's shutdown under its lock

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        held_requests.release_all()
        super().handle_exit(sig, frame)
