"""An attempt's log on the worker's side: the lines its job wrote, waiting to be sent.

Everything a job writes — a command's stdout and stderr, a handler's `print`,
`logging` records and `ctx.log` — becomes timestamped lines here
(webapp.domain.log_lines), and the attempt's reporting thread sends them in pieces
with the worker's batched reports (attempt.py). Each piece names its byte offset in
the attempt's log, so a piece sent twice (an answer lost) is stored once. The buffer is
bounded: a job writing faster than its lines can be sent loses lines, and the log says
how many where they were, rather than the worker's memory or its heartbeats paying for
it. What is lost is the middle, as the server's cap would cut it: the log's first half
buffer is never dropped, and the newest lines push out the oldest unsent ones after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..domain.limits import LOG_ITEM_MAX_BYTES, LOG_WORKER_BUFFER_BYTES
from ..domain.log_lines import LOGGING, prefix

# A line longer than this (a progress bar without newlines, a binary blob) is cut into pieces.
MAX_LINE_CHARS = 16 * 1024


class Piece:
    """Log text to send: it starts at byte `offset` of the attempt's log and is `size` bytes long.
    (A plain class: a dataclass or NamedTuple would cost the worker's start-up a few ms.)"""

    __slots__ = ("offset", "size", "text")

    def __init__(self, offset: int, text: str, size: int):
        self.offset, self.text, self.size = offset, text, size


class AttemptLog:
    """One attempt's unsent lines; safe to write from any thread."""

    def __init__(self, buffer_limit: int = LOG_WORKER_BUFFER_BYTES, on_pending: Callable[[], None] = lambda: None):
        self.buffer_limit = buffer_limit
        self._on_pending = on_pending  # called when the first unsent line arrives
        self._lock = threading.Lock()
        self._beginning: list[bytes] = []  # unsent lines of the log's first buffer_limit // 2 bytes: kept
        self._pending: list[bytes] = []  # unsent lines after them: the oldest go first when over the limit
        self._pending_bytes = 0  # both
        self._offset = 0  # the log offset of the first byte not yet handed out in a piece
        self._in_flight: Piece | None = None
        self._partial: dict[str, str] = {}  # a stream's line not ended yet
        self._dropped_bytes = 0
        self._dropped_lines = 0
        self.written_bytes = 0  # accepted into the log, sent or not

    def write(self, stream: str, text: str, at: float | None = None) -> None:
        """Text as a stream wrote it: whole lines go to the log, an unended line waits for its end."""
        if not text:
            return
        with self._lock:
            lines = (self._partial.pop(stream, "") + text).split("\n")
            rest = lines.pop()
            if len(rest) > MAX_LINE_CHARS:
                lines.append(rest)
                rest = ""
            if rest:
                self._partial[stream] = rest
            if lines:
                self._add(stream, lines, at)

    def end(self, stream: str | None = None) -> None:
        """The stream (or, with None, every stream) ended: its unended line goes to the log as it is."""
        with self._lock:
            names = [stream] if stream is not None else list(self._partial)
            for name in names:
                rest = self._partial.pop(name, "")
                if rest:
                    self._add(name, [rest], None)

    def take(self, max_bytes: int = LOG_ITEM_MAX_BYTES) -> Piece | None:
        """The next piece to send, up to `max_bytes` of whole lines; the same piece again until `sent`."""
        with self._lock:
            if self._in_flight is not None:
                return self._in_flight
            if not self._pending and not self._beginning:
                return None
            notice = self._drop_notice()
            queued_bytes = self._pending_bytes + len(notice)
            queued = [*self._beginning, notice, *self._pending]
            self._beginning = []
            count = taken = 0
            while count < len(queued) and taken < max_bytes:  # only what the piece needs is joined
                taken += len(queued[count])
                count += 1
            data, self._pending = b"".join(queued[:count]), queued[count:]
            if len(data) > max_bytes:
                cut = data.rfind(b"\n", 0, max_bytes) + 1 or max_bytes
                while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # never inside a character
                    cut -= 1
                data, rest = data[:cut], data[cut:]
                self._pending.insert(0, rest)
            self._pending_bytes = queued_bytes - len(data)
            self._in_flight = Piece(self._offset, data.decode("utf-8", "replace"), len(data))
            self._offset += len(data)
            return self._in_flight

    def sent(self, piece: Piece) -> None:
        """The server stored `piece` (or refused it for good): the next `take` moves on."""
        with self._lock:
            if self._in_flight is piece:
                self._in_flight = None

    @property
    def unsent_bytes(self) -> int:
        with self._lock:
            return self._pending_bytes + (self._in_flight.size if self._in_flight else 0)

    def _add(self, stream: str, lines: list[str], at: float | None) -> None:
        head = prefix(stream, at)
        data = "".join(f"{head}{line}\n" for line in lines).replace("\0", "\ufffd").encode("utf-8", "replace")
        first = not self._pending and not self._beginning and self._in_flight is None
        if self.written_bytes < self.buffer_limit // 2:
            self._beginning.append(data)
        else:
            self._pending.append(data)
        self._pending_bytes += len(data)
        self.written_bytes += len(data)
        while self._pending_bytes > self.buffer_limit and self._pending:
            dropped = self._pending.pop(0)
            self._pending_bytes -= len(dropped)
            self._dropped_bytes += len(dropped)
            self._dropped_lines += dropped.count(b"\n")
        if first:
            self._on_pending()

    def _drop_notice(self) -> bytes:
        """The line that stands where lines were dropped (before the unsent ones that are left)."""
        if not self._dropped_bytes:
            return b""
        notice = (
            f"{prefix(LOGGING)}jobwarden: the worker dropped {self._dropped_lines:,} lines "
            f"({self._dropped_bytes:,} bytes) here: the job wrote faster than they could be sent\n"
        ).encode()
        self._dropped_bytes = self._dropped_lines = 0
        return notice
