"""Prometheus counters: transitions, claim latency and orphans reaped, counted where
they happen. Jobs by status are read from the store at scrape time
(`webapp.server.exposition`, which also adds up gunicorn's processes). This module
imports nothing of the app, so any layer can count.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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

COUNTERS = (TRANSITIONS, CLAIM_LATENCY, ORPHANS_REAPED)
