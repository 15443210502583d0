"""The one format of a job's log line, written by the worker and read by the dashboard.

`2026-12-06T04:47:15.123Z out hello`: the UTC time the worker read it (milliseconds),
the stream (`out`, `err`, or `log` for `logging` records and `ctx.log`), the text. One
line per line the job wrote; the log is plain UTF-8 text, so `?format=text` and a
download are the stored bytes as they are.
"""

from __future__ import annotations

import re
import time
from functools import cache
from typing import NamedTuple

STDOUT = "out"
STDERR = "err"
LOGGING = "log"
STREAMS = (STDOUT, STDERR, LOGGING)


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(a line, an ANSI escape sequence): compiled when first read, never by a worker, which only writes."""
    line = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (out|err|log) (.*)", re.DOTALL)
    # colours, cursor moves, titles: stripped for display, never interpreted
    ansi = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
    return line, ansi


def stamp(at: float | None = None) -> str:
    """The line prefix's time: `2026-12-06T04:47:15.123Z`."""
    at = time.time() if at is None else at
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


def prefix(stream: str, at: float | None = None) -> str:
    return f"{stamp(at)} {stream} "


class LogLine(NamedTuple):
    at: str | None  # None: a line that is not in the format (a cut marker)
    stream: str | None
    text: str


def parse(line: str) -> LogLine:
    """A stored line, split into its time, stream and text (ANSI codes stripped)."""
    match = _patterns()[0].fullmatch(line)
    if match is None:
        return LogLine(None, None, strip_ansi(line))
    return LogLine(match.group(1), match.group(2), strip_ansi(match.group(3)))


def strip_ansi(text: str) -> str:
    return _patterns()[1].sub("", text)


def cut_marker(cut_bytes: int) -> str:
    """The line that stands where the middle of a log over the cap was cut. ASCII, so that a log
    of ASCII text stays one byte a character in memory: joining, encoding and sending a megabyte
    of it is then several times cheaper."""
    return f"[{cut_bytes:,} bytes cut: this attempt's log is over JOBWARDEN_LOG_MAX_BYTES; its beginning and end are kept]\n"
