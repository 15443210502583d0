"""A Python handler's `print` and `logging`, routed to the log of the job whose thread wrote them.

One worker process runs several jobs at once, each in its own thread, so `sys.stdout`,
`sys.stderr` and the root logger are shared. `install` puts a router in front of each:
on a handler's thread (`routed_to`, a context variable) what it writes goes to its own
job's log; anywhere else it goes where it went before. A thread the handler starts itself
begins with an empty context and so writes to the worker's own output unless it runs
inside `contextvars.copy_context().run(...)`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

from ..domain.log_lines import LOGGING, STDERR, STDOUT
from .logbook import AttemptLog

current_log: ContextVar[AttemptLog | None] = ContextVar("jobwarden_current_log", default=None)
ECHO = "jobwarden_echo"  # a record the worker logs about a line already in the job's log


class RoutedStream:
    """`sys.stdout` or `sys.stderr`: the current job's log, else the original stream."""

    def __init__(self, stream: str, original: TextIO):
        self.stream = stream
        self.original = original

    def write(self, text: str) -> int:
        log = current_log.get()
        if log is None:
            return self.original.write(text)
        log.write(self.stream, str(text))
        return len(text)

    def flush(self) -> None:
        if current_log.get() is None:
            self.original.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty…: the original's
        return getattr(self.original, name)


class RoutedHandler(logging.Handler):
    """On the root logger: a record logged on a job's thread goes to that job's log too."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        log = current_log.get()
        if log is None or getattr(record, ECHO, False):
            return
        try:
            log.write(LOGGING, self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def install() -> None:
    """Route `print` and `logging` per job in this process (once; idempotent)."""
    if not isinstance(sys.stdout, RoutedStream):
        sys.stdout = RoutedStream(STDOUT, sys.stdout)
    if not isinstance(sys.stderr, RoutedStream):
        sys.stderr = RoutedStream(STDERR, sys.stderr)
    root = logging.getLogger()
    if not any(isinstance(handler, RoutedHandler) for handler in root.handlers):
        root.addHandler(RoutedHandler())


@contextmanager
def routed_to(log: AttemptLog) -> Iterator[None]:
    """What this thread prints and logs meanwhile goes to `log`."""
    token = current_log.set(log)
    try:
        yield
    finally:
        current_log.reset(token)
