"""webapp.domain.backoff: the one backoff formula the server's retries, the client and the worker share."""

from __future__ import annotations

from webapp.domain.backoff import backoff_delay, jittered


def test_the_delay_doubles_per_attempt_within_its_jitter():
    for attempt, expected in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)):
        delays = [backoff_delay(attempt, base=0.5, cap=100, jitter=0.2) for _ in range(200)]
        assert all(expected * 0.8 <= delay <= expected * 1.2 for delay in delays)
        assert len(set(delays)) > 1  # jittered, so many clients never retry in step


def test_the_delay_never_passes_the_cap_plus_its_jitter():
    assert all(backoff_delay(attempt, base=1, cap=30, jitter=0.25) <= 37.5 for attempt in range(1, 60))


def test_jitter_spreads_a_value_both_ways():
    values = [jittered(10.0, 0.5) for _ in range(500)]
    assert min(values) < 10 < max(values) and all(5 <= v <= 15 for v in values)
