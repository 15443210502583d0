"""The Prometheus exposition of /metrics: the counters of `webapp.metrics`, and jobs by
status read from the store at scrape time, so every replica reports the same truth.

Under gunicorn each worker process counts on its own; the serving settings set
PROMETHEUS_MULTIPROC_DIR so /metrics adds them up (prometheus-client's multiprocess
mode). Without it (the development server, tests) one process registry serves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import jobs
from ..domain.statuses import Status
from ..domain.timeutil import utcnow
from ..domain.wait_buckets import quantile
from ..jobs import series
from ..jobs.alert_rules import firing_by_kind
from ..metrics import COUNTERS


class JobsByStatus(Collector):
    """`jobwarden_jobs{status}`."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("jobwarden_jobs", "Jobs in the store by status.", labels=["status"])
        with self.app.app_context():
            for status, count in jobs.count_by_status().items():
                family.add_metric([status], count)
        yield family


class Trends(Collector):
    """The /stats series at scrape time, for Prometheus to keep over time: queue depth and
    oldest wait per queue, the last hour's finished jobs per type, queue and status, its
    failure rate per type and queue latency p50/p95 per queue, and firing alerts per kind."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("jobwarden_queue_depth", "Queued jobs per queue.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "jobwarden_queue_oldest_seconds", "Wait of the oldest queued job per queue.", labels=["queue"]
        )
        finished = GaugeMetricFamily(
            "jobwarden_finished_last_hour", "Jobs finished in the last hour.", labels=["type", "queue", "status"]
        )
        failure = GaugeMetricFamily(
            "jobwarden_failure_rate_last_hour", "Failed among completed and failed, last hour.", labels=["type"]
        )
        latency = GaugeMetricFamily(
            "jobwarden_queue_latency_seconds_last_hour",
            "Ready (run_after) → claimed of the jobs finished in the last hour.",
            labels=["queue", "quantile"],
        )
        firing = GaugeMetricFamily("jobwarden_alerts_firing", "Firing alerts per rule kind.", labels=["kind"])
        with self.app.app_context():
            now = utcnow()
            for queue, (count, wait_s) in series.queued_now(now).items():
                depth.add_metric([queue], count)
                if wait_s is not None:
                    oldest.add_metric([queue], wait_s)
            counts: dict[tuple[str, str, str], int] = {}
            ran: dict[str, list[int]] = {}
            waits: dict[str, dict[int, int]] = {}
            for job_type, queue, status, bucket, n in series.finished_since(now - timedelta(hours=1)):
                counts[job_type, queue, status] = counts.get((job_type, queue, status), 0) + n
                if status in (Status.COMPLETED, Status.FAILED):
                    failed_ran = ran.setdefault(job_type, [0, 0])
                    failed_ran[0] += n if status == Status.FAILED else 0
                    failed_ran[1] += n
                per_queue = waits.setdefault(queue, {})
                per_queue[bucket] = per_queue.get(bucket, 0) + n
            for labels, n in counts.items():
                finished.add_metric(list(labels), n)
            for job_type, (failed, total) in ran.items():
                failure.add_metric([job_type], failed / total)
            for queue, buckets in waits.items():
                for q in (0.5, 0.95):
                    value = quantile(buckets, q)
                    if value is not None:
                        latency.add_metric([queue, str(q)], value)
            for kind, n in firing_by_kind().items():
                firing.add_metric([kind], n)
        yield from (depth, oldest, finished, failure, latency, firing)


def render(app: Flask) -> tuple[bytes, str]:
    """The exposition text for one scrape."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in COUNTERS:
            registry.register(collector)
    registry.register(JobsByStatus(app))
    registry.register(Trends(app))
    return generate_latest(registry), CONTENT_TYPE_LATEST
