"""A claim that waits: with nothing ready, hold the request until a job becomes
claimable (see webapp.store.wakeup), its `run_after` comes, `wait_s` runs out or the
server process stops (webapp.server.held_requests).

While it waits the request holds no database connection, so a server keeps
answering the dashboard with hundreds of idle workers connected (each waiting
claim holds one gunicorn thread: see webapp.server.gunicorn_config).
"""

from __future__ import annotations

import select as io_select
import socket
import threading
import time
from datetime import datetime

from flask import request

from .. import jobs
from ..domain.timeutil import utcnow
from ..metrics import CLAIM_LATENCY
from ..store import flow, wakeup
from ..store.extensions import db
from ..store.models import JobRow
from ..store.next_claimable import next_claimable_at
from . import hangups, held_requests

RUN_AFTER_MARGIN_S = 0.002  # wake just after a job's run_after, not just before it


def claim_waiting(
    worker_id: str,
    *,
    types: list[str] | None,
    queues: list[str] | None = None,
    batch_size: int,
    wait_s: float,
    start: bool = False,
) -> list[JobRow]:
    """Claim up to `batch_size` jobs, waiting up to `wait_s` seconds for the first.

    A worker that hangs up while its claim waits (a stopping worker half-closes the
    connection and still reads the answer) gets its answer at once, with nothing claimed;
    a client that sends more bytes instead gets UnexpectedBytes.
    """
    if wait_s <= 0:
        return [] if client_gone() else _claim(worker_id, types, queues, batch_size, start)
    deadline = time.monotonic() + wait_s
    hub = wakeup.hub()
    interrupted = threading.Event()  # its socket turned readable, or this process stops

    def interrupt() -> None:
        interrupted.set()
        hub.nudge()

    woken_for: tuple[str, str] | None = None
    with hangups.watching(client_socket(), interrupt), held_requests.released_at_stop(interrupt):
        while True:
            if client_gone() or held_requests.stopping():
                # Asked of the socket itself before each look: the watcher's word can come after
                # the wake-up. A killed worker's presence dropping orphans its job, which frees its
                # queue's slot and wakes its own claim, whose socket closed in the same instant:
                # a job claimed then went to nobody and spent an attempt (on a one-attempt job,
                # all of them) before the monitor saw it never started. A stopping server answers
                # with nothing: its worker claims again, from whichever server answers.
                return []
            seen = hub.generation
            looked_at = utcnow()
            claimed = _claim(worker_id, types, queues, batch_size, start)
            if woken_for is not None and claimed and woken_for not in {(job.type, job.queue) for job in claimed}:
                # Picked for a new job, it took others (of a higher priority, or due at the same
                # moment): the new job may still wait, so another claim that takes it looks.
                hub.wake({woken_for: 1})
            if claimed or time.monotonic() >= deadline:
                return claimed
            until = deadline
            next_due = _earliest(
                next_claimable_at(types, queues, looked_at), flow.held_back_until(utcnow(), types, queues)
            )
            db.session.close()  # wait without a connection
            if next_due is not None:
                until = min(until, time.monotonic() + (next_due - utcnow()).total_seconds() + RUN_AFTER_MARGIN_S)
            woken_for = hub.wait(seen, until - time.monotonic(), stop=interrupted, types=types, queues=queues)
            if interrupted.is_set():
                if held_requests.stopping():
                    return []
                if client_gone():
                    return []  # its worker is leaving: jobs claimed now would wait for the monitor
                # Bytes, not a hang-up: the socket stays readable, so waiting again would return at
                # once, forever (5,000 claim statements in 9 s). No worker sends them: refuse.
                raise UnexpectedBytes("the client sent more bytes while its claim waited; send one request at a time")


class UnexpectedBytes(Exception):
    """The client of a waiting claim sent more than its request (a hang-up sends nothing)."""


def _claim(
    worker_id: str, types: list[str] | None, queues: list[str] | None, batch_size: int, start: bool
) -> list[JobRow]:
    started = time.perf_counter()
    claimed = jobs.claim_jobs(worker_id, types=types, queues=queues, batch_size=batch_size, start=start)
    CLAIM_LATENCY.observe(time.perf_counter() - started)
    return claimed


def _earliest(*moments: datetime | None) -> datetime | None:
    return min((moment for moment in moments if moment is not None), default=None)


def client_socket() -> socket.socket | None:
    sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    return sock if isinstance(sock, socket.socket) else None


def client_gone() -> bool:
    """The worker half-closed or closed its connection while the claim waited (it is stopping)."""
    sock = client_socket()
    return sock is not None and peer_closed(sock)


def peer_closed(sock: socket.socket) -> bool:
    """The other end closed or half-closed `sock` (not: it sent bytes). poll, not select: a
    server holding a thousand workers' connections has descriptors past select's 1023, where
    select raises and every waiting claim and presence would be taken for a hang-up."""
    poller = io_select.poll()
    poller.register(sock, io_select.POLLIN)
    try:
        return bool(poller.poll(0)) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
