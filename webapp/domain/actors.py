"""Who made a change, as the event timeline and the webhooks name them.

The timeline's `actor` column holds one of these; the webhooks tell the monitor's
failures (`job.orphaned`) from a worker's (`job.failed`) by it, so each name is
defined once here.
"""

from __future__ import annotations

API = "api"  # a call to the public API
OPERATOR = "operator"  # a person in the dashboard or the command line
MONITOR = "monitor"  # the health monitor
SERVER = "server"  # a server that saw a worker's connection drop (webapp.server.presence)
WORKER = "worker"  # a worker that did not say its id
WORKER_PREFIX = "worker:"


def worker_actor(worker_id: str | None) -> str:
    """`worker:ID`, the actor of a worker's report."""
    return f"{WORKER_PREFIX}{worker_id}" if worker_id else WORKER
