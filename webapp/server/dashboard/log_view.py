"""The job page's log: the lines of one attempt, parsed for display (time, stream, text with
ANSI codes stripped; Jinja escapes the rest), and what the page's follower needs to ask
only for what it does not have yet (the next offset, whether the attempt has ended)."""

from __future__ import annotations

from typing import Any

from ...domain.log_lines import parse
from ...jobs import logs
from ...jobs.query_params import BadQuery

PANEL_ID = "log"  # the log panel's element id: an HTMX request aimed at it gets the panel alone
NEXT_OFFSET_HEADER = "X-Log-Next-Offset"
FINAL_HEADER = "X-Log-Final"
ATTEMPT_HEADER = "X-Log-Attempt"  # the attempt read: a page that had none yet follows this one from then on


def number_arg(raw: str | None, field: str, *, low: int) -> int | None:
    """A whole-number query parameter, or BadQuery naming it."""
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(field, f"must be a whole number, got {raw!r}") from None
    if not low <= value <= 2**62:
        raise BadQuery(field, f"must be at least {low}")
    return value


def log_context(job_id: int, attempt: int | None, offset: int = 0) -> dict[str, Any]:
    """What `jobs/_log.html` and `jobs/_log_lines.html` render."""
    found = logs.attempt_log(job_id, attempt=attempt, offset=offset)
    return {
        "log": found,
        "log_lines": [parse(line) for line in found.slice.text.splitlines()],
        "log_attempts": logs.attempt_numbers(job_id),
    }
