"""How an attempt ended: the `outcome` of its row, shown on the job page and in the API.

Kills and orphans count against `max_attempts` like failures do; the worker reports
`completed`, `failed`, `interrupted` (handed back when it stopped) and `cancelled`;
the server writes the rest.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the worker stopped and handed the job back
    CANCELLED = "cancelled"
    MARKED_FAILED = "marked_failed"
    ORPHANED = "orphaned"  # the monitor found nobody running it
    LEASE_LOST = "lease_lost"  # the worker learnt its lease had moved on


# The last error of a job the monitor or a server orphaned begins so ("orphaned: worker w1 died …").
ORPHANED_PREFIX = "orphaned: "
