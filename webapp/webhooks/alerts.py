"""The monitor's alerts as notifications, written in the pass's own transaction.

`alert.stale_pending`: the pass settled jobs held in pending too long.
`alert.unserved_type`: queued jobs of a type no worker was heard taking for
JOBWARDEN_NO_WORKER_AFTER_S (a deploy replacing the workers raises nothing). Raised
when a type becomes unserved, not on every pass: the pass records the current set in
its `changes` (`unserved_types`), and the next pass compares with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select

from ..jobs import unserved_types
from ..store.extensions import db
from ..store.models import MonitorPass
from .events import ALERT_STALE_PENDING, ALERT_UNSERVED_TYPE
from .outbox import notify, subscribed_endpoints


def _listened_to(event: str) -> bool:
    return bool(db.session.scalar(select(exists(subscribed_endpoints(event)))))


def _previous_unserved() -> list[str]:
    changes = db.session.scalar(select(MonitorPass.changes).order_by(MonitorPass.id.desc()).limit(1))
    return list((changes or {}).get("unserved_types") or [])


def raise_alerts(
    changes: dict[str, Any], now: datetime, *, worker_timeout_s: float, left_within_s: float, pending_action: str
) -> None:
    """Queue the pass's alerts (in its transaction); adds `unserved_types` to `changes` when listened to."""
    settled = changes["stale_pending"]
    if settled:
        verb = "queued" if pending_action == "queue" else "failed"
        ids = ", ".join(str(job_id) for job_id in settled[:20]) + (" …" if len(settled) > 20 else "")
        notify(
            ALERT_STALE_PENDING,
            {
                "alert": {
                    "kind": "stale_pending",
                    "jobs": settled,
                    "action": pending_action,
                    "message": f"{len(settled)} job(s) stuck in pending were {verb} by the health monitor: {ids}",
                }
            },
            job_id=None,
            now=now,
        )
    if not _listened_to(ALERT_UNSERVED_TYPE):
        return
    current = unserved_types(now, worker_timeout_s, left_within_s=left_within_s)
    changes["unserved_types"] = current
    new = [job_type for job_type in current if job_type not in _previous_unserved()]
    if new:
        notify(
            ALERT_UNSERVED_TYPE,
            {
                "alert": {
                    "kind": "unserved_type",
                    "types": new,
                    "unserved_types": current,
                    "message": f"no live worker takes type(s) {', '.join(new)}; their queued jobs wait",
                }
            },
            job_id=None,
            now=now,
        )
