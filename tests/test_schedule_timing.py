"""Next fire times: cron expressions read as cron reads them, over wall-clock time in an IANA zone,
across DST nights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from webapp.domain.schedule_timing import BadTiming, Timing

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def fires_between(timing: Timing, start: datetime, end: datetime) -> list[datetime]:
    times = []
    moment = timing.next_after(start)
    while moment < end:
        times.append(moment)
        moment = timing.next_after(moment)
    return times


def test_a_0230_schedule_fires_once_in_the_spring_forward_night():
    # Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    timing = Timing("30 2 * * *", None, "Europe/Berlin", ANCHOR)
    night = fires_between(timing, datetime(2026, 3, 28, 22, tzinfo=UTC), datetime(2026, 3, 29, 10, tzinfo=UTC))
    assert night == [datetime(2026, 3, 29, 1, 30, tzinfo=UTC)]  # 03:30 CEST: where 02:30 CET would have been
    assert timing.next_after(night[0]) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 CEST the next night


def test_a_0230_schedule_fires_once_in_the_fall_back_night():
    # Europe/Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    timing = Timing("30 2 * * *", None, "Europe/Berlin", ANCHOR)
    night = fires_between(timing, datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 10, tzinfo=UTC))
    assert night == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # the first 02:30 (CEST)
    assert timing.next_after(night[0]) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET


def test_a_sequence_through_the_repeated_hour_only_moves_forward():
    timing = Timing("*/30 * * * *", None, "Europe/Berlin", ANCHOR)
    times = fires_between(timing, datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 4, tzinfo=UTC))
    assert times == sorted(set(times))
    # From inside the repeated hour (02:10 CET, the second time round) the next fire is still after it.
    inside = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert timing.next_after(inside) > inside


def test_every_s_is_anchored_at_creation():
    timing = Timing(None, 90, "UTC", ANCHOR)
    assert timing.upcoming(ANCHOR + timedelta(seconds=100), 2) == [
        ANCHOR + timedelta(seconds=180),
        ANCHOR + timedelta(seconds=270),
    ]


@pytest.mark.parametrize(
    "cron, every_s, zone, field",
    [
        ("61 * * * *", None, "UTC", "cron"),
        ("* * *", None, "UTC", "cron"),
        ("not a cron", None, "UTC", "cron"),
        ("0 3 * * *", None, "Mars/Olympus", "timezone"),
        (None, 0, "UTC", "every_s"),
        ("0 3 * * *", 60, "UTC", "cron"),
        (None, None, "UTC", "cron"),
        ("0 0 30 2 *", None, "UTC", "cron"),  # no such day: it would never fire
        ("0 0 31 4,6,9,11 *", None, "UTC", "cron"),
    ],
)
def test_bad_timing_names_its_field(cron, every_s, zone, field):
    with pytest.raises(BadTiming) as refused:
        Timing(cron, every_s, zone, ANCHOR)
    assert refused.value.field == field


@pytest.mark.parametrize(
    "cron, words",
    [
        ("30 2 * * *", "every day at 02:30 Europe/Berlin"),
        ("0 9 * * 1", "every Monday at 09:00 Europe/Berlin"),
        ("0 9 * * 1-5", "every weekday at 09:00 Europe/Berlin"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 0 1 * *", "cron 0 0 1 * * (Europe/Berlin)"),
    ],
)
def test_expression_in_words(cron, words):
    assert Timing(cron, None, "Europe/Berlin", ANCHOR).in_words() == words


WEEKDAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}


@pytest.mark.parametrize(
    "cron, days",
    [
        ("0 9 * * 1", {"Monday"}),
        ("0 9 * * 0", {"Sunday"}),
        ("0 9 * * 7", {"Sunday"}),
        ("0 9 * * 1-5", WEEKDAYS),
        ("0 9 * * mon-fri", WEEKDAYS),
        ("0 9 * * 6,0", {"Saturday", "Sunday"}),
        ("0 9 * * */2", {"Sunday", "Tuesday", "Thursday", "Saturday"}),
    ],
)
def test_the_day_of_week_is_the_one_cron_and_the_words_mean(cron, days):
    """APScheduler 3 read 0 as Monday: "every Monday at 09:00" fired on Tuesdays, and
    weekdays (1-5) from Tuesday to Saturday."""
    berlin = ZoneInfo("Europe/Berlin")
    timing = Timing(cron, None, "Europe/Berlin", ANCHOR)
    fired = [moment.astimezone(berlin) for moment in fires_between(timing, ANCHOR, ANCHOR + timedelta(days=14))]
    assert {moment.strftime("%A") for moment in fired} == days
    assert {(moment.hour, moment.minute) for moment in fired} == {(9, 0)}
    assert len(fired) == 2 * len(days)


def test_a_restricted_day_of_month_and_day_of_week_fire_on_either_as_cron_does():
    # January 2026: Fridays are the 2nd, 9th, 16th, 23rd and 30th; the 13th is a Tuesday.
    timing = Timing("0 0 13 * 5", None, "UTC", ANCHOR)
    january = fires_between(timing, ANCHOR, datetime(2026, 2, 1, tzinfo=UTC))
    assert [moment.day for moment in january] == [2, 9, 13, 16, 23, 30]


@pytest.mark.parametrize("cron", ["0 0 last * *", "0 0 L * *"])
def test_the_last_day_of_the_month_as_apscheduler_spelled_it_and_as_croniter_does(cron):
    """Schedules stored while APScheduler read them may say `last`; refused, such a schedule
    would stop every page and monitor pass that reads its timing."""
    timing = Timing(cron, None, "UTC", ANCHOR)
    assert [moment.date().isoformat() for moment in timing.upcoming(ANCHOR, 3)] == [
        "2026-01-31", "2026-02-28", "2026-03-31",
    ]  # fmt: skip
