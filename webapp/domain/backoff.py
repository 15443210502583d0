"""Exponential backoff with jitter: the one formula for every retry in Jobwarden
(a failed job's next attempt, the client's retried calls, the worker's wait for
an unreachable server)."""

from __future__ import annotations

import random


def jittered(seconds: float, jitter: float = 0.2) -> float:
    """`seconds` spread by ±`jitter` (a fraction), so many clients never retry in step."""
    return seconds * random.uniform(1 - jitter, 1 + jitter)


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float = 0.2) -> float:
    """base·2^(attempt−1), at most `cap`, ±`jitter`; attempt 1 is the first retry."""
    return jittered(min(cap, base * 2 ** max(0, attempt - 1)), jitter)
