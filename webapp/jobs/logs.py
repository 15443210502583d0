"""Attempt logs: what the worker API stores and what the API, the job page and the CLI read.

A sealed attempt's log (nothing can be added to it any more: webapp.store.logs.sealed) never
changes, so the JSON answer of a big read of it is kept, per serving process, in a cache of
bounded size: a repeated read of a finished job's whole log (its job page, `jobwarden jobs logs
ID`) costs the one statement that finds the attempt and a lookup, where reading and encoding a
megabyte cost most of the answer's time. The key names the attempt's row and its claim time and
everything else the answer depends on, and the statement that finds the attempt runs first: a
deleted job's log is never answered from the cache, and an id used again is another key.

A running attempt's log still grows, but a stored piece never changes, and a piece the cap
shows whole stays shown whole until the cut passes it (the beginning never moves). So each
process also keeps, per attempt and within a budget, the JSON-escaped text of the pieces its
last whole read showed whole, in at most two runs of pieces one after the other (the
beginning's and the end's: the statement names two ranges however many pieces a job sent):
the next read's one statement reads only the other pieces' text (what came since, and the
pieces the cap's boundaries lie in), and only they are encoded; the answer is joined from the
escaped parts, which is the same bytes as escaping the joined text (JSON escapes each
character alone). Where the text cannot come from pieces held (pieces that
overlap, which a worker sending one stream's bytes never sends) it is read whole as before.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from ..store import logs
from ..store.extensions import db
from ..store.logs import LogPiece, LogSlice, Stored
from ..store.models import JobAttempt
from .kept import kept
from .queries import get_job

# A few whole 1 MiB logs per process; answers under the floor are cheap to make again.
ANSWER_CACHE_BYTES = 8 * 1024 * 1024
CACHED_ANSWER_MIN_BYTES = 64 * 1024
_ANSWERS_KEY = "jobwarden_log_answers"  # in the app's extensions
# The escaped pieces of a few running attempts' 1 MiB logs per process (reads of less than the floor: none).
PIECES_CACHE_BYTES = 8 * 1024 * 1024
_PIECES_KEY = "jobwarden_log_pieces"
_PIECE_OVERHEAD = 100  # bytes a held piece takes beside its text: its bytes object, its key, its slot
_TEXT = "\x00the log's text\x00"  # stands for the text in the answer's envelope


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
    row: Hashable  # who it is: its row and claim, so a deleted job's pieces are never taken for another's
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
    answers = kept(_ANSWERS_KEY, ANSWER_CACHE_BYTES)
    if key is not None and (body := answers.get(key)) is not None:
        return body
    body = None
    if found is not None and (found.length or 0) - offset >= CACHED_ANSWER_MIN_BYTES:  # not a follow's poll
        body = _from_pieces(job_id, found, offset)
    if body is None:
        body = (current_app.json.dumps(log_json(_read(job_id, found, offset))) + "\n").encode()
    if key is not None and len(body) >= CACHED_ANSWER_MIN_BYTES:
        answers.put(key, body, len(body))
    return body


def _from_pieces(job_id: int, found: _Attempt, offset: int) -> bytes | None:
    """The answer joined from the escaped pieces this process holds and those it reads now (see
    the module's docstring); None where the pieces held cannot make it."""
    pieces = kept(_PIECES_KEY, PIECES_CACHE_BYTES)
    key = (found.row, max_bytes())
    held: _Held = pieces.get(key) or _Held((), {})
    read = logs.read_parts(
        job_id, found.number, offset=offset, max_bytes=max_bytes(), length=found.length, held=held.runs
    )
    if read.parts is None:
        return None
    runs: list[list[logs.Whole]] = []  # the pieces shown whole, in runs one after the other
    escaped: list[bytes] = []
    fragments: dict[int, bytes] = {}
    for part in read.parts:
        if isinstance(part, str):
            escaped.append(_escaped(part))
            continue
        if part.text is None and part.start not in held.fragments:  # a piece overlapping those held
            return None
        fragment = held.fragments[part.start] if part.text is None else _escaped(part.text)
        fragments[part.start] = fragment
        escaped.append(fragment)
        if runs and runs[-1][-1].start + runs[-1][-1].size == part.start:
            runs[-1].append(part)
        else:
            runs.append([part])
    if found.sealed_as is not None:  # its answer is kept whole instead
        pieces.drop(key)
    elif offset == 0:  # what a whole read shows whole; a read from further on shows less of it
        biggest = sorted(runs, key=lambda run: sum(piece.size for piece in run))[-logs.HELD_RUNS :]
        kept_runs = sorted((run[0].start, run[-1].start + run[-1].size, run) for run in biggest)
        now = _Held(
            tuple(logs.Run(start, end) for start, end, _ in kept_runs),
            {piece.start: fragments[piece.start] for *_, run in kept_runs for piece in run},
        )
        pieces.put(key, now, sum(len(fragment) + _PIECE_OVERHEAD for fragment in now.fragments.values()))
    slice_ = LogSlice(read.offset, read.next_offset, _TEXT, read.cut_bytes, read.length)
    envelope = (
        current_app.json.dumps(log_json(AttemptLog(found.number, slice_, found.sealed_as is not None))) + "\n"
    ).encode()
    before, text, after = envelope.partition(_escaped(_TEXT))  # the quotes stay around it
    assert text, "the envelope holds the text's stand-in"
    return b"".join((before, *escaped, after))


@dataclass(frozen=True)
class _Held:
    """What a process holds of a running attempt's log: the runs of pieces its last whole read
    showed whole, and their text escaped, by where each piece starts."""

    runs: tuple[logs.Run, ...]
    fragments: dict[int, bytes]


def _escaped(text: str) -> bytes:
    """`text` as the answer's JSON writes it inside a string's quotes."""
    return current_app.json.dumps(text)[1:-1].encode()


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
    who = (job_id, row_id, claimed_at, number)
    return _Attempt(number, length, who, (*who, outcome, length) if sealed and outcome is not None else None)


def _read(job_id: int, found: _Attempt | None, offset: int) -> AttemptLog:
    if found is None:
        return AttemptLog(None, LogSlice(offset, offset, "", 0, 0), final=False)
    piece = logs.read(job_id, found.number, offset=offset, max_bytes=max_bytes(), length=found.length)
    return AttemptLog(found.number, piece, final=found.sealed_as is not None)


def has_log(job_id: int, attempt: int) -> bool:
    """Whether the attempt wrote any log (one index entry read)."""
    return db.session.scalar(select(logs.length_of(job_id, attempt))) is not None


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
