"""Prometheus metrics: transitions, claim latency and orphans reaped (counted
where they happen) and jobs by status (read from the store at scrape time).

Under gunicorn each worker process counts on its own; `gunicorn.conf.py` sets
PROMETHEUS_MULTIPROC_DIR so /metrics adds them up (prometheus-client's
multiprocess mode). Without it (the development server, tests) one process
registry serves.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

TRANSITIONS = Counter(
    "jobwarden_transitions_total",
    "State-machine transitions applied, by action and target status.",
    ["action", "to_status"],
)
CLAIM_LATENCY = Histogram(
    "jobwarden_claim_latency_seconds",
    "Server time of one claim call (batch).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
ORPHANS_REAPED = Counter(
    "jobwarden_orphans_reaped_total",
    "Jobs the health monitor settled because nobody ran them any more, by kind.",
    ["kind"],
)


class JobsByStatus(Collector):
    """`jobwarden_jobs{status}`: read at scrape time, so every replica reports the same truth."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        from . import jobs

        family = GaugeMetricFamily("jobwarden_jobs", "Jobs in the store by status.", labels=["status"])
        with self.app.app_context():
            for status, count in jobs.count_by_status().items():
                family.add_metric([status], count)
        yield family


def render(app) -> tuple[bytes, str]:
    """The exposition text for one scrape."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (TRANSITIONS, CLAIM_LATENCY, ORPHANS_REAPED):
            registry.register(collector)
    registry.register(JobsByStatus(app))
    return generate_latest(registry), CONTENT_TYPE_LATEST
