"""Small formatting helpers for the templates: ages, durations, capped counts, status badges.

The helpers a table calls for each of its rows (time tags, badges, progress) build their
HTML here in Python rather than as Jinja macros or with `Markup.format`: a macro call and
the escaping formatter cost more than the rest of a row (the jobs table's 50 rows took
most of a page's time), and the HTML is the same.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from ...domain.queues import Waiting
from ...domain.statuses import FINISHED, LIVE, Status
from ...domain.timeutil import utcnow


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """'12s ago' for a past moment."""
    if moment is None:
        return "—"
    return f"{duration(((now or utcnow()) - moment).total_seconds())} ago"


# Both read the moment's own digits (UTC throughout) without its offset: `isoformat` cut
# to length writes what strftime did, in a third of its time (a table writes 200 of them).


def when(moment: datetime | None) -> str:
    """'%Y-%m-%d %H:%M:%S UTC', the one format; static/dashboard.js shows it in the viewer's zone."""
    return moment.isoformat(" ", "seconds")[:19] + " UTC" if moment else "—"


def _iso(moment: datetime) -> str:
    """'%Y-%m-%dT%H:%M:%S.%fZ'."""
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


# The texts put into these tags are digits, punctuation and the fixed words of `duration`,
# so they are joined unescaped: nothing in them is markup.


def timetag(moment: datetime | None) -> Markup:
    """`<time>` with the absolute UTC time as text and title; the page's script localises both."""
    if moment is None:
        return Markup("—")
    shown = when(moment)
    return Markup(f'<time datetime="{_iso(moment)}" title="{shown}" data-local>{shown}</time>')


def isotag(value: str | None, ago_s: float | None = None) -> Markup:
    """`timetag` for an ISO 8601 string (the monitor's report carries them for the JSON API);
    with `ago_s`, the text says '12s ago' and the absolute time is in the title."""
    if not value:
        return Markup("—")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ago_s is None:
        return timetag(moment)
    return Markup(f'<time datetime="{_iso(moment)}" title="{when(moment)}">{duration(ago_s)} ago</time>')


def agotag(moment: datetime | None, now: datetime | None = None) -> Markup:
    """`<time>` saying '12s ago', with the absolute time in its title."""
    if moment is None:
        return Markup("—")
    return Markup(f'<time datetime="{_iso(moment)}" title="{when(moment)}">{age(moment, now)}</time>')


def intag(moment: datetime, now: datetime | None = None) -> Markup:
    """`<time>` saying 'in 12s' for a future moment ('due' once passed), with the absolute time in its title."""
    left = (moment - (now or utcnow())).total_seconds()
    text = f"in {duration(left)}" if left > 0 else "due now"
    return Markup(f'<time datetime="{_iso(moment)}" title="{when(moment)}" data-countdown>{text}</time>')


# Status badges: a shape per status as well as a colour (inline SVG, no font needed); the text is the label.
STATUS_SHAPES = {
    Status.PENDING: (
        '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="2"/>'
        '<path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" stroke-width="1.6"/>'
    ),
    Status.QUEUED: '<path d="M3 4h10M3 8h10M3 12h6" stroke="currentColor" stroke-width="2" fill="none"/>',
    Status.CLAIMED: '<path d="M8 2l6 6-6 6-6-6z" fill="currentColor"/>',
    Status.RUNNING: '<path d="M4 2.5l9 5.5-9 5.5z" fill="currentColor"/>',
    Status.COMPLETED: '<path d="M2.5 8.5l3.5 3.5 7.5-8" fill="none" stroke="currentColor" stroke-width="2.2"/>',
    Status.FAILED: '<path d="M3.5 3.5l9 9M12.5 3.5l-9 9" stroke="currentColor" stroke-width="2.4"/>',
    Status.CANCELLED: (
        '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="2"/>'
        '<path d="M3.8 12.2l8.4-8.4" stroke="currentColor" stroke-width="2"/>'
    ),
}


def _badge(status: str) -> Markup:
    name = escape(str(status))
    icon = (
        '<svg class="icon" aria-hidden="true" focusable="false" viewBox="0 0 16 16" width="12" height="12">'
        f"{STATUS_SHAPES.get(status, '')}</svg>"  # type: ignore[call-overload]  # any text may be looked up
    )
    return Markup(
        f'<span class="badge badge-{name}" data-status="{name}">{icon}{escape(str(status).capitalize())}</span>'
    )


BADGES = {status: _badge(status) for status in Status}


def badge(status: str) -> Markup:
    """A status's badge: its shape, colour (by class) and label; made once per status."""
    return BADGES.get(status) or _badge(status)  # type: ignore[call-overload]  # any text may be looked up


def progress(value: float | None, status: str | None = None) -> Markup:
    """A running job's progress bar and percentage; a dash once finished or while unknown."""
    if status in FINISHED or value is None:
        return Markup("—")
    percent = int(round(value, 0))  # what Jinja's `round(0) | int` did
    return Markup(
        f'<progress max="100" value="{escape(value)}" aria-label="Progress">{percent}%</progress> '
        f'<span class="num">{percent}%</span>'
    )


def run_seconds(job, now: datetime | None = None) -> float | None:
    """How long the job has run: until now while claimed or running, until it finished once finished.

    None while it waits (pending, queued, or queued again for a retry), so a waiting
    retry's duration does not keep growing.
    """
    if job.started_at is None:
        return None
    if job.status in LIVE:
        return ((now or utcnow()) - job.started_at).total_seconds()
    if job.status in FINISHED and job.finished_at is not None and job.finished_at >= job.started_at:
        return (job.finished_at - job.started_at).total_seconds()
    return None


def error_headline(error: str | None, limit: int = 140) -> str:
    """The first non-empty line of an error, cut at `limit` characters, for the table."""
    line = next((line.strip() for line in (error or "").splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


_NAME_PARTS = re.compile(r"(?<=[._/])")


def wrappable(name: str) -> Markup:
    """A dotted name (a job type: `media.video.transcode`) that wraps after its dots, never inside
    a word: a crowded table broke "demo.sleep" as "demo.slee|p"."""
    return Markup("<wbr>").join(escape(part) for part in _NAME_PARTS.split(name))


PAYLOAD_CAP = 2000  # characters shown before "show all"


def pretty_json(value: Any) -> str:
    """Indented JSON for the job page (payload, result)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def plain_number(value: float) -> str:
    """A number as an operator typed it: a period of 60 s reads "60", not the stored "60.0"."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def capped(count: int, cap: int) -> str:
    return f"{cap:,}+" if count > cap else f"{count:,}"


def bulk_summary(label: str, result: dict) -> str:
    """'Cancel: 3 changed; skipped #5 (already completed — nothing was done), …' for the flash after a bulk action."""
    message = f"{label}: {result['changed']} changed"
    skipped = result["skipped"]
    if skipped:
        shown = ", ".join(f"#{item['id']} ({item['reason']})" for item in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        message += f"; {len(skipped)} skipped: {shown}{more}"
    return message + "."


def waiting_tag(reason: Waiting, until: datetime | None, now: datetime | None = None) -> Markup:
    """The jobs table's word on why a queued job waits: when it runs, for a job waiting for its
    time (a delay, a retry's backoff); else the reason's name."""
    if reason == Waiting.RUN_AFTER and until is not None:
        return Markup("runs ") + intag(until, now)
    return escape(reason.replace("_", " "))


WAITING_TEXT = {
    Waiting.QUEUE_PAUSED: "its queue is paused",
    Waiting.CONCURRENCY: "a free slot: its queue runs as many jobs as its concurrency allows",
    Waiting.KEY_CONCURRENCY: "its concurrency key: another job of the key runs",
    Waiting.RATE_LIMIT: "its queue's rate limit: the window is full",
    Waiting.RUN_AFTER: "its run_after time",
    Waiting.STOPPING: "its previous attempt to stop",
    Waiting.NO_WORKER: "a worker: no live worker takes its type",
}
