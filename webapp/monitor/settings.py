"""The monitor's settings, read from the app's configuration and checked."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app

from ..config import ConfigError
from ..store.leases import shortest_lease_seconds

PENDING_ACTIONS = ("fail", "queue")
# Bounds that keep one pass short however much a crash left behind; the rest waits for the next pass.
DEFAULT_MAX_PER_KIND = 1000
DEFAULT_RETENTION_BATCH_SIZE = 1000
DEFAULT_RETENTION_MAX_BATCHES = 10


def monitor_settings() -> dict[str, Any]:
    config = current_app.config
    action = config["JOBWARDEN_PENDING_ACTION"]
    if action not in PENDING_ACTIONS:
        raise ConfigError(f"JOBWARDEN_PENDING_ACTION must be fail or queue, got {action!r}")
    default_timeout = float(config["JOBWARDEN_HEARTBEAT_TIMEOUT"])
    return {
        "interval": float(config["JOBWARDEN_MONITOR_INTERVAL"]),
        "default_timeout": default_timeout,
        # The shortest timeout of any type bounds every heartbeat scan; each job is then judged by its own.
        "min_timeout": shortest_lease_seconds(),
        "pending_timeout": float(config["JOBWARDEN_PENDING_TIMEOUT"]),
        "pending_action": action,
        "no_worker_after": float(config["JOBWARDEN_NO_WORKER_AFTER_S"]),
        "retention": timedelta(days=float(config["JOBWARDEN_RETENTION_DAYS"])),
        "max_per_kind": int(config.get("JOBWARDEN_MONITOR_MAX_PER_KIND", DEFAULT_MAX_PER_KIND)),
        "batch_size": int(config.get("JOBWARDEN_RETENTION_BATCH_SIZE", DEFAULT_RETENTION_BATCH_SIZE)),
        "max_batches": int(config.get("JOBWARDEN_RETENTION_MAX_BATCHES", DEFAULT_RETENTION_MAX_BATCHES)),
    }
