"""The Prometheus exposition of /metrics: the counters of `webapp.metrics`, and jobs by
status read from the store at scrape time, so every replica reports the same truth.

Under gunicorn each worker process counts on its own; the serving settings set
PROMETHEUS_MULTIPROC_DIR so /metrics adds them up (prometheus-client's multiprocess
mode). Without it (the development server, tests) one process registry serves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import jobs
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
    return generate_latest(registry), CONTENT_TYPE_LATEST
