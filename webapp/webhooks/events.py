"""The event types an endpoint can subscribe to, and which transition raises which."""

from __future__ import annotations

from ..domain.actors import MONITOR
from ..domain.statuses import Status

JOB_COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
JOB_CANCELLED = "job.cancelled"
JOB_ORPHANED = "job.orphaned"
JOB_RECOVERED = "job.recovered"
ALERT_UNSERVED_TYPE = "alert.unserved_type"
ALERT_STALE_PENDING = "alert.stale_pending"
# An alert rule's alert changed state (webapp.monitor.alerting): once per change, on any number of replicas.
ALERT_FIRING = "alert.firing"
ALERT_RESOLVED = "alert.resolved"

JOB_EVENTS = (JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED, JOB_ORPHANED, JOB_RECOVERED)
ALERT_EVENTS = (ALERT_UNSERVED_TYPE, ALERT_STALE_PENDING, ALERT_FIRING, ALERT_RESOLVED)
EVENT_TYPES = JOB_EVENTS + ALERT_EVENTS

# Edges that bring a finished job back: force-start, and resume/restart where the state machine has them.
RECOVERY_ACTIONS = frozenset({"force_start", "resume", "restart"})
RECOVERED_FROM = frozenset({Status.FAILED, Status.CANCELLED})


def job_event(action: str, from_status: str, to_status: str, actor: object) -> str | None:
    """The event a transition raises, or None. The monitor's failures and re-queues are `job.orphaned`."""
    by_monitor = actor == MONITOR
    if to_status == Status.COMPLETED:
        return JOB_COMPLETED
    if to_status == Status.CANCELLED:
        return JOB_CANCELLED
    if to_status == Status.FAILED:
        return JOB_ORPHANED if by_monitor else JOB_FAILED
    if action == "retry" and by_monitor:
        return JOB_ORPHANED
    if action in RECOVERY_ACTIONS and from_status in RECOVERED_FROM:
        return JOB_RECOVERED
    return None
