"""The pickup timeline's probe (benchmarks/pickup_timeline.py): loaded by every process the
benchmark starts (it is first on their PYTHONPATH), it wraps the functions a pickup passes
through and appends `wall-clock-ns pid mark` lines to $JOBWARDEN_TIMELINE. Nothing of it is in
the package: without the variable it does nothing."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

PATH = os.environ.get("JOBWARDEN_TIMELINE")


def mark(name: str) -> None:
    line = f"{time.time_ns()} {os.getpid()} {name}\n".encode()
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # one write: lines never interleave
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def around(owner: Any, attribute: str, name: str) -> None:
    """Mark `name:begin` and `name:end` around every call of owner.attribute."""
    original = getattr(owner, attribute)

    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        mark(f"{name}:begin")
        try:
            return original(*args, **kwargs)
        finally:
            mark(f"{name}:end")

    setattr(owner, attribute, wrapped)


def before(owner: Any, attribute: str, name: str, when: Any = None) -> None:
    original = getattr(owner, attribute)

    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if when is None or when(*args, **kwargs):
            mark(name)
        return original(*args, **kwargs)

    setattr(owner, attribute, wrapped)


def install() -> None:
    import flask

    from webapp.server import claim_wait
    from webapp.store import flow, transitions, wakeup
    from webapp.worker import attempt, protocol, reports

    def request_path() -> str:
        return flask.request.path.rsplit("/", 1)[-1]

    original_dispatch = flask.Flask.full_dispatch_request

    def dispatch(self: flask.Flask) -> Any:
        path = request_path()
        mark(f"server:request {path}:begin")
        try:
            return original_dispatch(self)
        finally:
            mark(f"server:request {path}:end")

    flask.Flask.full_dispatch_request = dispatch  # type: ignore[method-assign]
    around(transitions, "create", "server:create statement")
    before(wakeup, "_wake_this_process", "server:create committed")
    before(wakeup.Hub, "wake", "server:hub woken")
    around(claim_wait, "_claim", "server:claim statement")
    around(flow, "take_turns", "server:take turns")
    around(flow, "held_back_until", "server:held back until")
    around(wakeup.Hub, "wait", "server:claim waits")
    # the first held transition: the start report, or (a claim that started the job) the complete
    around(transitions, "transition_held", "server:start or complete statement")
    around(protocol.WorkerClient, "claim", "worker:claim request")
    before(attempt.Attempt, "begin", "worker:attempt begins")
    around(reports.ReportBatcher, "_send_batch", "worker:report request")


if PATH:
    install()
