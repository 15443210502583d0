"""When a schedule fires: croniter reads the cron expression, wall-clock time maps it to instants.

A cron expression names wall-clock times in the schedule's IANA zone, read as cron reads
it: 0 and 7 are Sunday, and when both the day of the month and the day of the week are
restricted, either matching is enough. croniter finds the next matching wall time (naive),
`zoneinfo` turns it into an instant. APScheduler 3's CronTrigger, used before, read day of
week 0 as Monday (`0 9 * * 1`, "every Monday", fired on Tuesdays; weekdays `1-5` ran
Tuesday to Saturday) and required both day fields to match; handed the zone itself, it
fired a 02:30 schedule twice in a fall-back night and then repeated the same instant
(Europe/Berlin, 2026-10-25). Here:

- a wall time that occurs twice (fall-back) fires at its first occurrence only;
- a wall time that does not exist (spring-forward) fires once, at the instant the
  clock would have shown it without the jump (02:30 → 03:30 local), as cron does;
- every next fire time is strictly after the one before, so a sequence never loops.

`every_s` schedules are APScheduler's IntervalTrigger anchored at the schedule's creation.

croniter and APScheduler (with tzlocal) are imported when a schedule's time is first read
or checked: a serving process whose store has no schedules never loads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_TICK = timedelta(microseconds=1)
_WEEKDAYS = {
    "0": "Sunday",
    "1": "Monday",
    "2": "Tuesday",
    "3": "Wednesday",
    "4": "Thursday",
    "5": "Friday",
    "6": "Saturday",
    "7": "Sunday",
}


class BadTiming(ValueError):
    """A cron expression, time zone or interval the store refuses; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def zone(name: str) -> ZoneInfo:
    if name not in _zone_names():
        raise BadTiming("timezone", f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadTiming("timezone", f"unknown time zone {name!r}") from None


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


# A fixed moment to check an expression from: whether it ever fires does not depend on today.
_CHECKED_FROM = datetime(2000, 1, 1)


def next_wall_time(cron: str, wall: datetime) -> datetime:
    """The first wall-clock time (naive) after `wall` that the 5-field expression names."""
    from croniter import CroniterBadDateError, CroniterError, croniter

    fields = cron.split()
    if len(fields) != 5:
        raise BadTiming("cron", "a cron expression has 5 fields: minute hour day-of-month month day-of-week")
    # `last` (the month's last day) is how APScheduler, which read these until 0023, spells
    # croniter's `L`: schedules stored with it keep their meaning.
    fields[2] = ",".join("L" if part == "last" else part for part in fields[2].split(","))
    try:
        return croniter(" ".join(fields), wall).get_next(datetime)
    except CroniterBadDateError:
        raise BadTiming("cron", "it names no date that exists (such as 30 February), so it never fires") from None
    except (CroniterError, ValueError, KeyError) as error:
        raise BadTiming("cron", f"invalid cron expression: {error}") from None


@dataclass(frozen=True)
class Timing:
    """A schedule's "when": `cron` in `timezone`, or every `every_s` seconds from `anchor`."""

    cron: str | None
    every_s: int | None
    timezone: str
    anchor: datetime

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every_s is None):
            raise BadTiming("cron", "give either cron or every_s, not both and not neither")
        if self.every_s is not None and self.every_s < 1:
            raise BadTiming("every_s", "every_s must be at least 1")
        zone(self.timezone)
        if self.cron is not None:
            next_wall_time(self.cron, _CHECKED_FROM)

    def next_after(self, instant: datetime) -> datetime:
        """The first fire time strictly after `instant` (aware UTC)."""
        if self.every_s is not None:
            from apscheduler.triggers.interval import IntervalTrigger

            trigger = IntervalTrigger(seconds=self.every_s, start_date=self.anchor, timezone=UTC)
            fire = trigger.get_next_fire_time(None, instant + _TICK)
            return fire.astimezone(UTC)
        assert self.cron is not None
        local = zone(self.timezone)
        wall = instant.astimezone(local).replace(tzinfo=None)
        while True:
            wall = next_wall_time(self.cron, wall)
            fire = wall.replace(tzinfo=local, fold=0).astimezone(UTC)
            if fire > instant:
                return fire

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        times: list[datetime] = []
        for _ in range(count):
            after = self.next_after(after)
            times.append(after)
        return times

    def in_words(self) -> str:
        """ "every day at 02:30 Europe/Berlin", or the expression itself where words would not be shorter."""
        if self.every_s is not None:
            return f"every {_duration(self.every_s)}"
        assert self.cron is not None
        minute, hour, day, month, weekday = self.cron.split()
        if minute.isdigit() and hour.isdigit() and day == "*" and month == "*":
            at = f"at {int(hour):02d}:{int(minute):02d} {self.timezone}"
            if weekday == "*":
                return f"every day {at}"
            if weekday in _WEEKDAYS:
                return f"every {_WEEKDAYS[weekday]} {at}"
            if weekday == "1-5":
                return f"every weekday {at}"
        if minute.isdigit() and hour == "*" and day == "*" and month == "*" and weekday == "*":
            return f"every hour at minute {int(minute)}"
        if minute.startswith("*/") and hour == day == month == weekday == "*":
            return f"every {minute[2:]} minutes"
        if self.cron == "* * * * *":
            return "every minute"
        return f"cron {self.cron} ({self.timezone})"


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}s" if count != 1 else unit
    return f"{seconds} seconds" if seconds != 1 else "second"
