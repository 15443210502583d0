"""Attempt logs: what the worker API stores and what the API, the job page and the CLI read.

A sealed attempt's log (nothing can be added to it any more: webapp.store.logs.sealed) never
changes, so the JSON answer of a big read of it is kept, per serving process, in a cache of
bounded size: a repeated read of a finished job's whole log (its job page, `jobwarden jobs logs
ID`) costs the one statement that finds the attempt and a lookup, where reading and encoding a
megabyte cost most of the answer's time. The key names the attempt's row and its claim time and
everything else the answer depends on, and the statement that finds the attempt runs first: a
deleted job's log is never answered from the cache, and an id used again is another key.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from ..store import logs
from ..store.extensions import db
from ..store.logs import LogPiece, LogSlice, Stored
from ..store.models import JobAttempt
from .queries import get_job

# A few whole 1 MiB logs per process; answers under the floor are cheap to make again.
ANSWER_CACHE_BYTES = 8 * 1024 * 1024
CACHED_ANSWER_MIN_BYTES = 64 * 1024
_ANSWERS_KEY = "jobwarden_log_answers"  # in the app's extensions


class AttemptNotFound(LookupError):
    def __init__(self, job_id: int, attempt: int):
        super().__init__(f"job {job_id} has no attempt {attempt}")


@dataclass(frozen=True)
class AttemptLog:
    attempt: int | None  # None: the job has not been claimed yet
    slice: LogSlice
    # Nothing more will be written: the attempt has ended and no worker can add to it (a
    # cancelled job's worker holds its lease, and sends what its process wrote, until it confirms the stop).
    final: bool


@dataclass(frozen=True)
class _Attempt:
    number: int
    length: int | None  # of its log in bytes, as webapp.store.logs.length_of finds it
    sealed_as: Hashable | None  # who it is, once its log can no longer change (None before)


def max_bytes() -> int:
    return int(current_app.config["JOBWARDEN_LOG_MAX_BYTES"])


def append(pieces: Sequence[LogPiece]) -> list[Stored]:
    """In the caller's transaction (a report batch): one statement for all the pieces."""
    return logs.append(pieces, max_bytes=max_bytes())


def attempt_log(job_id: int, *, attempt: int | None = None, offset: int = 0) -> AttemptLog:
    """The log of `attempt` (default: the newest) from byte `offset`. JobNotFound, AttemptNotFound."""
    return _read(job_id, _find(job_id, attempt), offset)


def log_answer(job_id: int, *, attempt: int | None = None, offset: int = 0) -> bytes:
    """`attempt_log` as the JSON answer of GET /api/jobs/<id>/log; a sealed attempt's big answer
    is kept and answered again from memory (see the module's docstring)."""
    found = _find(job_id, attempt)
    key = None if found is None or found.sealed_as is None else (found.sealed_as, offset, max_bytes())
    answers = _answers()
    if key is not None and (kept := answers.get(key)) is not None:
        return kept
    body = (current_app.json.dumps(log_json(_read(job_id, found, offset))) + "\n").encode()
    if key is not None and len(body) >= CACHED_ANSWER_MIN_BYTES:
        answers.put(key, body)
    return body


def _find(job_id: int, attempt: int | None) -> _Attempt | None:
    """One statement: the attempt (default: the newest), its log's length and whether it is
    sealed. None: the job has no attempt yet. JobNotFound, AttemptNotFound."""
    query = select(
        JobAttempt.id,
        JobAttempt.claimed_at,
        JobAttempt.number,
        JobAttempt.outcome,
        logs.length_of(JobAttempt.job_id, JobAttempt.number),
        logs.sealed(JobAttempt.job_id, JobAttempt.number),
    ).where(JobAttempt.job_id == job_id)
    if attempt is None:
        query = query.order_by(JobAttempt.number.desc()).limit(1)
    else:
        query = query.where(JobAttempt.number == attempt)
    row = db.session.execute(query).first()
    if row is None:
        get_job(job_id)  # JobNotFound for an unknown job
        if attempt is not None:
            raise AttemptNotFound(job_id, attempt)
        return None
    row_id, claimed_at, number, outcome, length, sealed = row
    identity = (job_id, row_id, claimed_at, number, outcome, length) if sealed and outcome is not None else None
    return _Attempt(number, length, identity)


def _read(job_id: int, found: _Attempt | None, offset: int) -> AttemptLog:
    if found is None:
        return AttemptLog(None, LogSlice(offset, offset, "", 0, 0), final=False)
    piece = logs.read(job_id, found.number, offset=offset, max_bytes=max_bytes(), length=found.length)
    return AttemptLog(found.number, piece, final=found.sealed_as is not None)


def attempt_numbers(job_id: int) -> list[int]:
    return list(
        db.session.scalars(select(JobAttempt.number).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number))
    )


def log_json(found: AttemptLog) -> dict[str, object]:
    """The one JSON shape of a log read (GET /api/jobs/<id>/log)."""
    piece = found.slice
    return {
        "attempt": found.attempt,
        "offset": piece.offset,
        "next_offset": piece.next_offset,
        "text": piece.text,
        "cut_bytes": piece.cut_bytes,
        "final": found.final,
    }


class _Answers:
    """Encoded answers by key, at most `budget` bytes in all: the least recently read go first."""

    def __init__(self, budget: int):
        self._budget = budget
        self._held: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # gunicorn's threads share the process's answers

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._held.get(key)
            if body is not None:
                self._held.move_to_end(key)
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        if len(body) > self._budget:
            return
        with self._lock:
            if key in self._held:
                return
            self._held[key] = body
            self._size += len(body)
            while self._size > self._budget:
                _, dropped = self._held.popitem(last=False)
                self._size -= len(dropped)


def _answers() -> _Answers:
    """This app's kept answers (one app per serving process; each test's app its own)."""
    answers: _Answers | None = current_app.extensions.get(_ANSWERS_KEY)
    if answers is None:  # two threads may get here at once: setdefault keeps the first one made
        answers = current_app.extensions.setdefault(_ANSWERS_KEY, _Answers(ANSWER_CACHE_BYTES))
    return answers
