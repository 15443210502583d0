"""Small formatting helpers for the templates: ages, durations, capped counts."""
from __future__ import annotations

from datetime import datetime

from ..timeutil import utcnow


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
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


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
