"""Small formatting helpers for the templates: ages, durations, capped counts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from markupsafe import Markup

from ...domain.queues import Waiting
from ...domain.statuses import FINISHED, LIVE
from ...domain.timeutil import utcnow

TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"  # the one format; static/dashboard.js shows it in the viewer's zone


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


def when(moment: datetime | None) -> str:
    return moment.strftime(TIME_FORMAT) if moment else "—"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timetag(moment: datetime | None) -> Markup:
    """`<time>` with the absolute UTC time as text and title; the page's script localises both."""
    if moment is None:
        return Markup("—")
    return Markup('<time datetime="{}" title="{}" data-local>{}</time>').format(
        _iso(moment), when(moment), when(moment)
    )


def isotag(value: str | None, ago_s: float | None = None) -> Markup:
    """`timetag` for an ISO 8601 string (the monitor's report carries them for the JSON API);
    with `ago_s`, the text says '12s ago' and the absolute time is in the title."""
    if not value:
        return Markup("—")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ago_s is None:
        return timetag(moment)
    return Markup('<time datetime="{}" title="{}">{} ago</time>').format(_iso(moment), when(moment), duration(ago_s))


def agotag(moment: datetime | None, now: datetime | None = None) -> Markup:
    """`<time>` saying '12s ago', with the absolute time in its title."""
    if moment is None:
        return Markup("—")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(_iso(moment), when(moment), age(moment, now))


def intag(moment: datetime, now: datetime | None = None) -> Markup:
    """`<time>` saying 'in 12s' for a future moment ('due' once passed), with the absolute time in its title."""
    left = (moment - (now or utcnow())).total_seconds()
    text = f"in {duration(left)}" if left > 0 else "due now"
    return Markup('<time datetime="{}" title="{}" data-countdown>{}</time>').format(_iso(moment), when(moment), text)


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


PAYLOAD_CAP = 2000  # characters shown before "show all"


def pretty_json(value: Any) -> str:
    """Indented JSON for the job page (payload, result)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


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


WAITING_TEXT = {
    Waiting.QUEUE_PAUSED: "its queue is paused",
    Waiting.CONCURRENCY: "a free slot: its queue runs as many jobs as its concurrency allows",
    Waiting.KEY_CONCURRENCY: "its concurrency key: another job of the key runs",
    Waiting.RATE_LIMIT: "its queue's rate limit: the window is full",
    Waiting.RUN_AFTER: "its run_after time",
    Waiting.STOPPING: "its previous attempt to stop",
    Waiting.NO_WORKER: "a worker: no live worker takes its type",
}
