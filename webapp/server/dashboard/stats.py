"""The /stats figures over a chosen window (1 h, 24 h, 7 d, 30 d): throughput per bucket, time in
each status, failures by error and by type — all counted and summed by the store, over days
from its hourly rollups (`webapp.jobs.rollups`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ... import jobs
from ...domain.statuses import Status

TYPES_SHOWN = 50


@dataclass(frozen=True)
class Window:
    key: str  # in the URL: /stats?window=24h
    label: str  # "the last hour"
    buckets: int
    bucket: timedelta
    tick_format: str  # the axis labels and bar titles


WINDOWS = {
    "1h": Window("1h", "the last hour", 60, timedelta(minutes=1), "%H:%M"),
    # Whole hours, so all but the newest come from the hourly rollups, not the jobs table.
    "24h": Window("24h", "the last 24 hours", 24, timedelta(hours=1), "%H:%M"),
    "7d": Window("7d", "the last 7 days", 56, timedelta(hours=3), "%a %H:%M"),
    "30d": Window("30d", "the last 30 days", 60, timedelta(hours=12), "%d %b %H:%M"),
}
DEFAULT_WINDOW = "1h"


@dataclass
class TypeRow:
    type: str
    completed: int
    failed: int
    cancelled: int

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.cancelled

    @property
    def failure_rate(self) -> float:
        """Failed among completed and failed (a cancel is the operator's choice, not a failure)."""
        ran = self.completed + self.failed
        return self.failed / ran if ran else 0.0


@dataclass
class Stats:
    window: Window
    buckets: list[tuple[datetime, int, int]]  # bucket start, completed, failed
    peak: int
    averages: list[tuple[str, float | None]]  # phase label, mean seconds
    failures: jobs.ErrorGroups
    by_type: list[TypeRow]
    finished: int

    @property
    def empty(self) -> bool:
        return self.finished == 0


def _mean_seconds(total_us: int, count: int) -> float | None:
    return total_us / count / 1_000_000 if count else None


def _floor(moment: datetime, bucket: timedelta) -> datetime:
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((moment - midnight) // bucket) * bucket


def by_type(since: datetime) -> list[TypeRow]:
    """Finished jobs per type since `since`, by outcome, the most failing types first."""
    rows: dict[str, TypeRow] = {}
    for (job_type, status), n in jobs.finished_by_type(since).items():
        row = rows.setdefault(job_type, TypeRow(job_type, 0, 0, 0))
        outcome = {Status.COMPLETED.value: "completed", Status.FAILED.value: "failed"}.get(status, "cancelled")
        setattr(row, outcome, n)
    ordered = sorted(rows.values(), key=lambda row: (-row.failure_rate, -row.finished, row.type))
    return ordered[:TYPES_SHOWN]


def over(now: datetime, window: Window) -> Stats:
    first = _floor(now, window.bucket) - (window.buckets - 1) * window.bucket
    completed = [0] * window.buckets
    failed = [0] * window.buckets
    finished = waits = runs = 0
    wait_us = claimed_us = running_us = 0
    for row in jobs.finished_per_bucket(first, window.bucket):
        slot = min(window.buckets - 1, row.slot)  # a clock ahead of ours finishes jobs in the future
        if row.status == Status.COMPLETED:
            completed[slot] += row.jobs
        elif row.status == Status.FAILED:
            failed[slot] += row.jobs
        finished += row.jobs
        waits += row.waits
        runs += row.runs
        wait_us += row.wait_us
        claimed_us += row.claimed_us
        running_us += row.running_us
    buckets = [(first + i * window.bucket, completed[i], failed[i]) for i in range(window.buckets)]
    return Stats(
        window=window,
        buckets=buckets,
        peak=max([c + f for _, c, f in buckets] + [1]),
        averages=[
            ("Waiting (pending + queued)", _mean_seconds(wait_us, waits)),
            ("Claimed", _mean_seconds(claimed_us, runs)),
            ("Running", _mean_seconds(running_us, runs)),
        ],
        failures=jobs.failures_by_error(first),
        by_type=by_type(first),
        finished=finished,
    )
