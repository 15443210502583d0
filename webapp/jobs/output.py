"""What is kept of a worker's output: its tail."""

from __future__ import annotations

from ..domain.limits import OUTPUT_TAIL_BYTES


def tail(text: str | None, limit: int = OUTPUT_TAIL_BYTES) -> str | None:
    """The last `limit` bytes of `text`, cut on a character boundary."""
    if text is None:
        return None
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", "ignore")
