"""The /stats figures, computed from a bounded sample of the last hour's finished jobs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .. import jobs

WINDOW_MINUTES = 60
SAMPLE_LIMIT = 50_000


@dataclass
class Stats:
    minutes: list[tuple[datetime, int, int]]  # minute start, completed, failed
    peak: int
    averages: list[tuple[str, float | None]]  # phase label, mean seconds
    failures: list[tuple[str | None, int]]
    sampled: int
    sample_full: bool


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def last_hour(now: datetime) -> Stats:
    start = (now - timedelta(minutes=WINDOW_MINUTES - 1)).replace(second=0, microsecond=0)
    rows = jobs.finished_since(start, limit=SAMPLE_LIMIT)
    completed = [0] * WINDOW_MINUTES
    failed = [0] * WINDOW_MINUTES
    waiting, claimed, running = [], [], []
    for status, created_at, claimed_at, started_at, finished_at in rows:
        slot = min(WINDOW_MINUTES - 1, int((finished_at - start).total_seconds() // 60))
        if status == "completed":
            completed[slot] += 1
        elif status == "failed":
            failed[slot] += 1
        if claimed_at:
            waiting.append((claimed_at - created_at).total_seconds())
            if started_at:
                claimed.append((started_at - claimed_at).total_seconds())
                running.append((finished_at - started_at).total_seconds())
    minutes = [(start + timedelta(minutes=i), completed[i], failed[i]) for i in range(WINDOW_MINUTES)]
    return Stats(
        minutes=minutes,
        peak=max([c + f for _, c, f in minutes] + [1]),
        averages=[("Waiting (pending + queued)", _mean(waiting)), ("Claimed", _mean(claimed)),
                  ("Running", _mean(running))],
        failures=jobs.failures_by_error(start),
        sampled=len(rows),
        sample_full=len(rows) == SAMPLE_LIMIT,
    )
