"""One clock for the whole app: aware UTC datetimes, ISO 8601 on the wire."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def in_utc(value: datetime) -> datetime | None:
    """An aware time as UTC, or None where it has no UTC instant: 0001-01-01T00:00+14:00 and
    9999-12-31T23:59-14:00 are times a zone can name but UTC cannot, and converting them raised."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None
