"""Waiting claims learn at once that their worker hung up.

A stopping worker half-closes the connection of its waiting claim (webapp.client):
it still reads the answer, so the server must answer now and claim nothing more
for it. One thread per server process watches every waiting claim's socket at
once (`selectors`: epoll or kqueue) and wakes the claim whose socket turns
readable, so watching costs nothing while nobody hangs up.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

_watcher: _Watcher | None = None
_watcher_pid = 0
_watcher_lock = threading.Lock()


class _Watcher:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        # Registering wakes the thread through this pair: a selector need not see a socket
        # registered while it waits.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        threading.Thread(target=self._run, name="claim-hangups", daemon=True).start()

    def watch(self, sock: socket.socket, on_hang_up: Callable[[], None]) -> None:
        with self._lock:
            self._selector.register(sock, selectors.EVENT_READ, on_hang_up)
        self._wake_writer.send(b"\0")

    def forget(self, sock: socket.socket) -> None:
        with self._lock:
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass  # already reported (and unregistered) by the thread

    def _run(self) -> None:
        while True:
            try:
                self._report_hang_ups()
            except Exception:  # never let the thread die: hang-ups would then wait for the worker's 5 s
                log.exception("claim hang-ups: watching failed; watching again")
                time.sleep(1.0)

    def _report_hang_ups(self) -> None:
        for key, _events in self._selector.select():
            if key.data is None:
                try:
                    self._wake_reader.recv(4096)
                except BlockingIOError:
                    pass
                continue
            with self._lock:
                try:
                    self._selector.unregister(key.fileobj)
                except (KeyError, ValueError):
                    continue  # forgotten meanwhile: the claim has answered
            key.data()


def _this_process_watcher() -> _Watcher:
    """Started in the process that serves requests (a thread would not survive gunicorn's fork)."""
    global _watcher, _watcher_pid
    with _watcher_lock:
        if _watcher is None or _watcher_pid != os.getpid():
            _watcher, _watcher_pid = _Watcher(), os.getpid()
        return _watcher


@contextmanager
def watching(sock: socket.socket | None, on_hang_up: Callable[[], None]) -> Iterator[None]:
    """Call `on_hang_up` (from the watcher's thread) if `sock` turns readable while the block
    runs: its client half-closed or closed it. A request without a socket is not watched."""
    if sock is None:
        yield
        return
    watcher = _this_process_watcher()
    watcher.watch(sock, on_hang_up)
    try:
        yield
    finally:
        watcher.forget(sock)
