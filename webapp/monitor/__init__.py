"""The health monitor: finds runs nobody is running any more and settles them.

A pass (`run_pass`, in `settle`) looks at a handful of index ranges (`scans`) —
never the whole jobs table — and moves what it finds through the state machine
(the commands in `webapp.jobs.reaping`), one compare-and-set per job, each with
an event by actor `monitor` that says why. Because every change repeats the
scan's conditions, two passes (two replicas, or a manual cleanup beside the
schedule) never act twice on one job; on PostgreSQL an advisory lock also lets
only one pass run at a time, and the others skip.

`report` answers what is stuck without changing anything (/api/health and the
health page); `scheduler` decides where passes run (see its docstring). The scheduler
is imported from its module by what starts it, not here: with APScheduler's schedulers
and the webhook delivery it brings (urllib3, smtplib) it is about 4.5 MiB that a web
process with JOBWARDEN_MONITOR=off, which only reports, never loads.
"""

from __future__ import annotations

from ..domain.limits import COUNT_CAP
from .report import REPORT_LIMIT, health_report
from .scans import (
    PRUNED_STATUSES,
    cancelled_scan,
    live_scan,
    pending_scan,
    retention_scan,
    scans,
    unstarted_scan,
    worker_scan,
)
from .settings import PENDING_ACTIONS, monitor_settings
from .settle import LOCK_KEY, PASSES_KEPT, changed_count, instance_name, run_pass

__all__ = [
    "COUNT_CAP",
    "LOCK_KEY",
    "PASSES_KEPT",
    "PENDING_ACTIONS",
    "PRUNED_STATUSES",
    "REPORT_LIMIT",
    "cancelled_scan",
    "changed_count",
    "health_report",
    "instance_name",
    "live_scan",
    "monitor_settings",
    "pending_scan",
    "retention_scan",
    "run_pass",
    "scans",
    "unstarted_scan",
    "worker_scan",
]
