"""Attempt logs: what the worker API stores and what the API, the job page and the CLI read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from ..store import logs
from ..store.extensions import db
from ..store.logs import LogPiece, LogSlice, Stored
from ..store.models import JobAttempt
from .queries import get_job


class AttemptNotFound(LookupError):
    def __init__(self, job_id: int, attempt: int):
        super().__init__(f"job {job_id} has no attempt {attempt}")


@dataclass(frozen=True)
class AttemptLog:
    attempt: int | None  # None: the job has not been claimed yet
    slice: LogSlice
    final: bool  # the attempt has ended: nothing more will be written


def max_bytes() -> int:
    return int(current_app.config["JOBWARDEN_LOG_MAX_BYTES"])


def append(pieces: Sequence[LogPiece]) -> list[Stored]:
    """In the caller's transaction (a report batch): one statement for all the pieces."""
    return logs.append(pieces, max_bytes=max_bytes())


def attempt_log(job_id: int, *, attempt: int | None = None, offset: int = 0) -> AttemptLog:
    """The log of `attempt` (default: the newest) from byte `offset`. JobNotFound, AttemptNotFound."""
    query = select(JobAttempt.number, JobAttempt.outcome, logs.length_of(JobAttempt.job_id, JobAttempt.number)).where(
        JobAttempt.job_id == job_id
    )
    if attempt is None:
        query = query.order_by(JobAttempt.number.desc()).limit(1)
    else:
        query = query.where(JobAttempt.number == attempt)
    row = db.session.execute(query).first()
    if row is None:
        get_job(job_id)  # JobNotFound for an unknown job
        if attempt is not None:
            raise AttemptNotFound(job_id, attempt)
        return AttemptLog(None, LogSlice(offset, offset, "", 0, 0), final=False)
    number, outcome, length = row
    found = logs.read(job_id, number, offset=offset, max_bytes=max_bytes(), length=length)
    return AttemptLog(number, found, final=outcome is not None)


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
