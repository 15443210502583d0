"""/stats over time: four charts (throughput, failure rate, queue latency p50 and p95, queue
depth) for all jobs, one type or one queue, from `webapp.jobs.series` (rollups and the
monitor's queue samples), drawn by `charts`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ...jobs.series import series
from .charts import Chart, line_chart
from .stats import Window


@dataclass(frozen=True)
class Trends:
    scope: str  # "all jobs", "type video.transcode", "queue reports"
    charts: list[Chart]


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2g} s"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def trends(now: datetime, window: Window, *, job_type: str | None, queue: str | None) -> Trends:
    first = _floor(now, window) - (window.buckets - 1) * window.bucket
    points = series(first, window.bucket, window.buckets, job_type=job_type, queue=queue)
    starts = [point.start for point in points]
    scope = f"type {job_type}" if job_type else (f"queue {queue}" if queue else "all jobs")
    per = f"per {_seconds(window.bucket.total_seconds())}"
    times = f"over {window.label} (UTC), {scope}"
    fmt = window.tick_format

    def whole(value: float) -> str:
        return f"{value:,.0f}" if value >= 10 else f"{value:g}"

    return Trends(
        scope=scope,
        charts=[
            line_chart(
                "throughput",
                f"Jobs finished {per}",
                "jobs",
                f"Completed and failed jobs {per} {times}.",
                starts,
                {
                    "completed": ("line-ok", [float(p.completed) for p in points]),
                    "failed": ("line-bad", [float(p.failed) for p in points]),
                },
                time_format=fmt,
                value_label=whole,
            ),
            line_chart(
                "failure-rate",
                "Failure rate",
                "share failed",
                f"Share of failed among completed and failed jobs {per} {times}; no point where none finished.",
                starts,
                {"failure rate": ("line-bad", [p.failure_rate for p in points])},
                time_format=fmt,
                value_label=lambda value: f"{value * 100:.0f} %",
                minimum_top=0.1,
            ),
            line_chart(
                "latency",
                "Queue latency",
                "ready → claimed",
                f"Median (p50) and 95th percentile (p95) of the wait from when the jobs finished {per} {times} could run "
                "(created, or their delay or retry backoff over) until a worker claimed them.",
                starts,
                {"p50": ("line-main", [p.p50_s for p in points]), "p95": ("line-alt", [p.p95_s for p in points])},
                time_format=fmt,
                value_label=_seconds,
            ),
            line_chart(
                "depth",
                "Queue depth",
                "queued jobs",
                f"Most jobs queued at one moment {per} {times}, sampled by the health monitor once a minute.",
                starts,
                {"queued": ("line-main", [None if p.depth is None else float(p.depth) for p in points])},
                time_format=fmt,
                value_label=whole,
            ),
        ],
    )


def _floor(moment: datetime, window: Window) -> datetime:
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((moment - midnight) // window.bucket) * window.bucket
