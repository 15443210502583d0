"""The words of flow control: queue names, the limits a queue may hold and why a job waits.

Defined once here so the store's claim, the API's checks, the dashboard and the CLI
agree on the default queue, the bounds of a limit and the `waiting` reasons.
"""

from __future__ import annotations

from enum import StrEnum

DEFAULT_QUEUE = "default"
QUEUE_NAME_MAX_CHARS = 200

# A limit outside these bounds is a typo, not a setting: refused with a 400 naming it.
MAX_CONCURRENCY = 100_000
MAX_RATE_LIMIT = 1_000_000
MIN_RATE_PERIOD_S = 0.001
MAX_RATE_PERIOD_S = 7 * 24 * 3600.0
# `unique_for_s`: how long after a job finished a create with its unique key still matches it.
MAX_UNIQUE_FOR_S = 30 * 24 * 3600


class Waiting(StrEnum):
    """Why a queued (or pending) job is not running yet: the job JSON's `waiting`."""

    QUEUE_PAUSED = "queue_paused"
    CONCURRENCY = "concurrency"
    KEY_CONCURRENCY = "key_concurrency"
    RATE_LIMIT = "rate_limit"
    RUN_AFTER = "run_after"
    STOPPING = "stopping"
    NO_WORKER = "no_worker"
