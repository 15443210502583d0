"""The requests a server holds open — each worker's presence, each idle worker's waiting claim
(long polls of up to 20 s) — are answered as soon as their server process starts to stop.

gunicorn lets every open request finish before a process exits: within `graceful_timeout`
on SIGTERM, at the interpreter's exit (which joins the thread pool) on Ctrl-C. Held, they made
every stop of a server with a worker connected last 20 s and end in a SIGKILL, and so every
redeploy. Answered, a presence tells its worker nothing new (it presents itself again, to
whichever server answers), a claim answers with no job, and the process exits in a moment.

`release_all` runs inside the gunicorn worker's signal handlers (webapp.server.gunicorn_worker),
in the main thread, which never holds this module's lock nor a held request's events; a
second signal handled during the first returns at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_releases: dict[object, Callable[[], None]] = {}
_stopping = False


def release_all() -> None:
    """This process stops: answer every held request now, and hold none from here on."""
    global _stopping
    if _stopping:
        return  # a second signal, handled inside the first handler
    _stopping = True
    with _lock:
        releases = list(_releases.values())
    for release in releases:
        release()


def stopping() -> bool:
    return _stopping


@contextmanager
def released_at_stop(release: Callable[[], None]) -> Iterator[None]:
    """Call `release` (from the signal handler) if this process starts to stop while the block
    holds its request; at once if it already has."""
    token = object()
    with _lock:
        held = not _stopping
        if held:
            _releases[token] = release
    if not held:
        release()
    try:
        yield
    finally:
        with _lock:
            _releases.pop(token, None)
