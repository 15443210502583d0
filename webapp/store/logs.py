"""Attempt logs in the database: pieces appended in one statement per report batch,
capped with the beginning and the end kept, read from any byte offset.

An attempt's log is the text its worker sent, in pieces that each name their byte offset
(`start`) in it. All the pieces of a batch go in ONE statement, fenced by each piece's lease
token inside it (a worker that lost the job stores nothing) and stored once however often a
piece is sent (`ON CONFLICT DO NOTHING` on the offset).

The cap (`max_bytes`): once a log is longer, what is shown is its first half and its last
half, each cut between lines (so a little less); what lies between is cut, and counted. The pieces in the cut are
deleted when a log crosses each further eighth of the cap (one DELETE for the batch, so
stored pieces stay within about 1⅛ of the cap). Offsets never move: a reader that follows
from an offset inside the cut is sent on from the first piece kept, with a marker line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, and_, bindparam, case, delete, exists, literal, or_, select, text

from ..domain.log_lines import cut_marker
from ..domain.statuses import LIVE
from ..domain.timeutil import utcnow
from .extensions import db
from .models import Job, JobLogChunk, UTCDateTime
from .status_sql import LIVE_ONLY

# Who may still add to an attempt's log: its lease's holder (the job's token), while the job is
# live (its worker renews the lease; the monitor orphans it, dropping the token, if it falls
# silent) or, once an operator or the monitor ended it, until its worker confirms the stop
# (which drops the token) or the lease runs out, by when no copy of the attempt lives
# (webapp.store.leases). The one rule `append` stores by and `sealed` reads.

CUTS_PER_CAP = 8  # the stored pieces are trimmed each time a log grows by a further 1/8 of the cap


@dataclass(frozen=True)
class LogPiece:
    job_id: int
    lease_token: str
    start: int
    text: str

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


@dataclass(frozen=True)
class Stored:
    job_id: int
    attempt: int
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


def append(pieces: Sequence[LogPiece], *, max_bytes: int) -> list[Stored]:
    """Store the pieces whose lease token is still the job's (one statement); what was stored.
    Then trim the logs they pushed over a further eighth of the cap (one more, rarely)."""
    if not pieces:
        return []
    rows = []
    params: dict[str, object] = {}
    for index, piece in enumerate(pieces):
        rows.append(
            f"(CAST(:j{index} AS BIGINT), CAST(:t{index} AS VARCHAR(64)), CAST(:s{index} AS BIGINT),"
            f" CAST(:z{index} AS INTEGER), CAST(:x{index} AS TEXT))"
        )
        params.update(
            {f"j{index}": piece.job_id, f"t{index}": piece.lease_token, f"s{index}": piece.start}
            | {f"z{index}": piece.size, f"x{index}": piece.text}
        )
    statement = text(
        "WITH pieces (job_id, lease_token, start, size, text) AS (VALUES " + ", ".join(rows) + ") "
        "INSERT INTO job_log_chunks (job_id, attempt, start, size, text) "
        "SELECT jobs.id, jobs.attempt, pieces.start, pieces.size, pieces.text FROM pieces, jobs "
        "WHERE jobs.id = pieces.job_id AND jobs.lease_token = pieces.lease_token "
        f"AND (jobs.{LIVE_ONLY} OR jobs.lease_expires_at > :now) "
        "ON CONFLICT (job_id, attempt, start) DO NOTHING "
        "RETURNING job_id, attempt, start, size"
    ).bindparams(bindparam("now", type_=UTCDateTime()))
    stored = [Stored(*row) for row in db.session.execute(statement, {**params, "now": utcnow()})]
    _trim([piece for piece in stored if _crosses_a_cut(piece, max_bytes)], max_bytes)
    return stored


def _crosses_a_cut(piece: Stored, max_bytes: int) -> bool:
    if piece.end <= max_bytes:
        return False
    step = max(1, max_bytes // CUTS_PER_CAP)
    return piece.start <= max_bytes or (piece.start - max_bytes) // step != (piece.end - max_bytes) // step


def _trim(pieces: Iterable[Stored], max_bytes: int) -> None:
    head, tail = _halves(max_bytes)
    chunk = JobLogChunk
    cut = [
        and_(
            chunk.job_id == piece.job_id,
            chunk.attempt == piece.attempt,
            chunk.start >= head,
            chunk.start + chunk.size <= piece.end - tail,
        )
        for piece in pieces
    ]
    if cut:
        db.session.execute(delete(chunk).where(or_(*cut)).execution_options(synchronize_session=False))


def _halves(max_bytes: int) -> tuple[int, int]:
    """(the beginning kept, the end kept), in bytes."""
    return max_bytes // 2, max_bytes - max_bytes // 2


@dataclass(frozen=True)
class LogSlice:
    offset: int
    next_offset: int
    text: str  # with a marker line where the cut lies inside it
    cut_bytes: int  # bytes of this attempt's log cut so far (not only in this slice)
    length: int  # the attempt's log's length in bytes, cut included


@dataclass(frozen=True)
class Whole:
    """A piece shown whole: where it starts, its size in bytes, and its text (None: the caller
    said it holds it)."""

    start: int
    size: int
    text: str | None


HELD_RUNS = 2  # what a whole read shows whole: the beginning's pieces and the end's


@dataclass(frozen=True)
class Run:
    """Pieces one after the other, from the start of the first to the end of the last: no other
    piece can start in between but one overlapping them, which a worker never sends."""

    start: int
    end: int


@dataclass(frozen=True)
class LogParts:
    """A LogSlice before its text is joined: pieces shown whole, and the strings between and
    around them (a piece's part, a cut marker). None: a piece the caller holds is shown only in
    part, which a worker sending one stream's bytes never causes; read it without `held`."""

    offset: int
    next_offset: int
    parts: list[str | Whole] | None
    cut_bytes: int
    length: int


def length_of(job_id: Any, attempt: Any) -> ScalarSelect[int]:
    """The attempt's log's length in bytes (NULL: nothing written), as a subquery: a caller reads
    it in the statement that finds the attempt."""
    chunk = JobLogChunk
    return (
        select(chunk.start + chunk.size)
        .where(chunk.job_id == job_id, chunk.attempt == attempt)
        .order_by(chunk.start.desc())
        .limit(1)
        .scalar_subquery()
    )


def sealed(job_id: Any, attempt: Any) -> ColumnElement[bool]:
    """Whether nothing can be added to the attempt's log any more, as a condition a caller reads
    in the statement that finds the attempt. `append` stores a piece only under the job's lease
    token, for the job's current attempt, by the rule above; every claim writes a fresh token and
    bumps the attempt. An ended attempt is not always sealed: a job an operator cancelled or
    marked failed keeps its lease, and its worker may still send what its process wrote, until
    it confirms that the process stopped or the lease runs out."""
    writable = or_(Job.status.in_(sorted(LIVE)), Job.lease_expires_at > literal(utcnow(), UTCDateTime()))
    return ~exists().where(Job.id == job_id, Job.attempt == attempt, Job.lease_token.is_not(None), writable)


def read(job_id: int, attempt: int, *, offset: int, max_bytes: int, length: int | None) -> LogSlice:
    """The attempt's log from byte `offset`, as the cap shows it (see the module's docstring);
    `length` as `length_of` found it. One statement: see `read_parts`."""
    found = read_parts(job_id, attempt, offset=offset, max_bytes=max_bytes, length=length)
    assert found.parts is not None  # nothing held: every text was read
    text = "".join(part if isinstance(part, str) else part.text or "" for part in found.parts)
    return LogSlice(found.offset, found.next_offset, text, found.cut_bytes, found.length)


def read_parts(
    job_id: int, attempt: int, *, offset: int, max_bytes: int, length: int | None, held: Sequence[Run] = ()
) -> LogParts:
    """`read`'s slice in parts. One statement: the pieces from `offset` that the cap shows, and
    the (at most two) pieces the cut's boundaries lie in, which say where the cut's lines are.
    The text of a piece that starts in one of the `held` runs (at most HELD_RUNS) and is shown
    whole is not read: the caller holds it (a stored piece never changes)."""
    if length is None:
        return LogParts(offset, offset, [], 0, 0)
    chunk = JobLogChunk
    ends = chunk.start + chunk.size
    wanted: ColumnElement[bool] = ends > offset
    head = tail = length  # nothing cut
    if length > max_bytes:
        head, kept_tail = _halves(max_bytes)
        tail = length - kept_tail
        wanted = or_(
            and_(wanted, or_(chunk.start < head, ends > tail)),
            and_(chunk.start < head, ends > head),
            and_(chunk.start < tail, ends > tail),
        )
    piece_text: ColumnElement[Any] = chunk.text.expression
    if held:  # not read where it is shown whole (unless pieces overlap: then `parts` is None)
        assert len(held) <= HELD_RUNS, held
        runs = [*held, *[Run(0, 0)] * (HELD_RUNS - len(held))]  # one statement whatever the runs
        in_a_run = or_(*(and_(chunk.start >= run.start, chunk.start < run.end) for run in runs))
        skipped = and_(in_a_run, chunk.start >= offset, or_(ends <= head, chunk.start >= tail))
        piece_text = case((skipped, None), else_=chunk.text)
    rows = db.session.execute(
        select(chunk.start, chunk.size, piece_text)
        .where(chunk.job_id == job_id, chunk.attempt == attempt, wanted)
        .order_by(chunk.start)
    ).all()
    head_end, tail_start = (head, tail) if length <= max_bytes else _line_boundaries(rows, head, tail)
    parts: list[str | Whole] = []
    position = offset
    for start, size, piece in rows:
        end = start + size
        data = None if piece is None or piece.isascii() else piece.encode("utf-8")
        for low, high in ((start, min(end, head_end)), (max(start, tail_start), end)):
            low = max(low, position)
            if low >= high:
                continue
            if low > position:
                parts.append(cut_marker(low - position))
            if low == start and high == end:  # most pieces: no bytes to count
                parts.append(Whole(start, size, piece))
            elif piece is None:
                return LogParts(offset, offset, None, 0, length)
            elif data is None:
                parts.append(piece[low - start : high - start])
            else:
                parts.append(data[low - start : high - start].decode("utf-8", "ignore"))
            position = high
    return LogParts(offset, max(position, offset), parts, tail_start - head_end, length)


def _line_boundaries(rows: Sequence[Any], head: int, tail: int) -> tuple[int, int]:
    """(the start of the line at or before byte `head`, the start of the line at or after byte
    `tail`): the cap cuts between lines. `rows` hold the pieces these bytes lie in."""
    head_end, tail_start = head, tail  # a boundary between pieces, which end with whole lines
    for start, size, piece in rows:
        if start >= tail:
            break
        if piece is None or start + size <= head:  # not at a boundary (a piece the caller holds never is)
            continue
        data = piece.encode("utf-8")
        if start < head < start + len(data):
            newline = data.rfind(b"\n", 0, head - start)
            head_end = head if newline < 0 else start + newline + 1
        if start < tail < start + len(data):
            newline = data.find(b"\n", tail - start)
            tail_start = tail if newline < 0 else start + newline + 1
    return head_end, tail_start
