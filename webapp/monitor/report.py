"""The health report: what is stuck or about to be, the workers, and the monitor's passes."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from .. import jobs
from ..domain.alerts import FIRING
from ..domain.limits import COUNT_CAP
from ..domain.timeutil import isoformat, utcnow
from ..jobs.alert_rules import alert_json, recent_alerts
from ..store.extensions import db
from ..store.models import MonitorPass, Worker
from ..webhooks.endpoints import health as webhook_health
from .scans import (
    age,
    classify_live,
    live_scan,
    orphan_reason,
    pending_reason,
    pending_scan,
    unstarted_overdue,
    unstarted_reason,
    unstarted_scan,
)
from .settings import monitor_settings
from .settle import changed_count
from .story import recent_story

REPORT_LIMIT = 100


def health_report(*, now: datetime | None = None) -> dict[str, Any]:
    """What is stuck or about to be, the workers, and the monitor's last and next pass.

    Read-only: it shows what the next pass will do (orphaned, stale pending)
    and the `late` tier — live jobs past half their timeout — before anything
    is done to them.
    """
    now = now or utcnow()
    s = monitor_settings()
    live_rows = db.session.execute(live_scan(now - timedelta(seconds=s["min_timeout"] / 2), REPORT_LIMIT)).all()
    orphaned, late = classify_live(live_rows, now)
    unstarted_rows = db.session.execute(unstarted_scan(now - timedelta(seconds=s["min_timeout"]), REPORT_LIMIT)).all()
    orphaned_ids = {row.id for row, _ in orphaned}
    orphaned_jobs = [_live_entry(row, timeout, now, orphan_reason(row)) for row, timeout in orphaned]
    orphaned_jobs += [
        _live_entry(row, timeout, now, unstarted_reason(row))
        for row, timeout in unstarted_overdue(unstarted_rows, now)
        if row.id not in orphaned_ids
    ]
    pending_rows = db.session.execute(pending_scan(now - timedelta(seconds=s["pending_timeout"]), REPORT_LIMIT)).all()
    stale_pending_jobs = [
        {
            "id": row.id,
            "type": row.type,
            "created_at": isoformat(row.created_at),
            "pending_s": age(now, row.created_at),
            "action": s["pending_action"],
            "reason": pending_reason(row),
        }
        for row in pending_rows
    ]
    monitor = _monitor_status(now, s["interval"])
    workers = _workers(now, s["default_timeout"])
    webhooks = webhook_health()
    return {
        "healthy": (
            not orphaned_jobs
            and not stale_pending_jobs
            and not monitor["overdue"]
            and not webhooks["disabled_endpoints"]
        ),
        "checked_at": isoformat(now),
        "orphaned_jobs": orphaned_jobs,
        "late_jobs": [_live_entry(row, timeout, now, None) for row, timeout in late],
        "stale_pending_jobs": stale_pending_jobs,
        "counts": jobs.count_by_status(cap=COUNT_CAP),
        "counts_cap": COUNT_CAP,
        "workers": workers,
        "unserved_types": jobs.unserved_types(now, s["default_timeout"]),
        "monitor": monitor,
        "webhooks": webhooks,
        "recent": recent_story(now),
        "alerts": _alerts(),
    }


def _alerts() -> dict[str, list[dict[str, Any]]]:
    """Firing alerts (oldest first) and the history of recent ones (newest first)."""
    shown = [alert_json(alert, rule) for alert, rule in recent_alerts()]
    return {
        "firing": [alert for alert in shown if alert["state"] == FIRING],
        "recent": [alert for alert in shown if alert["state"] != FIRING],
    }


def _live_entry(row, timeout: float, now: datetime, reason: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "worker_id": row.worker_id,
        "heartbeat_at": isoformat(row.heartbeat_at),
        "claimed_at": isoformat(row.claimed_at),
        "since_heartbeat_s": age(now, row.heartbeat_at),
        "timeout_s": timeout,
        **({"reason": reason} if reason else {}),
    }


def _workers(now: datetime, timeout: float) -> list[dict[str, Any]]:
    rows = db.session.scalars(select(Worker).order_by(Worker.last_seen_at.desc()).limit(REPORT_LIMIT))
    report = []
    for worker in rows:
        silent = (now - worker.last_seen_at).total_seconds()
        heartbeat = "expired" if silent > timeout else "late" if silent > timeout / 2 else "ok"
        report.append(
            {
                "id": worker.id,
                "hostname": worker.hostname,
                "pid": worker.pid,
                "types": worker.types,
                "concurrency": worker.concurrency,
                "state": worker.state,
                "heartbeat": heartbeat,
                "started_at": isoformat(worker.started_at),
                "last_seen_at": isoformat(worker.last_seen_at),
                "since_seen_s": round(silent, 3),
            }
        )
    return report


def _scheduled_here() -> datetime | None:
    """This process's next pass; none where the scheduler was never imported (only what starts
    one imports it, so a web process with JOBWARDEN_MONITOR=off does not load APScheduler)."""
    scheduler = sys.modules.get(f"{__package__}.scheduler")
    return None if scheduler is None else scheduler.scheduled_here()


def _monitor_status(now: datetime, interval: float) -> dict[str, Any]:
    """The last pass any replica recorded, and when the next is due.

    The next pass is this process's scheduler's when it runs one; otherwise
    it is estimated from the last pass, as another process runs the monitor.
    """
    last = db.session.scalars(select(MonitorPass).order_by(MonitorPass.id.desc()).limit(1)).first()
    here = _scheduled_here()
    if here is not None:
        next_run, estimated = here, False
    elif last is not None:
        next_run, estimated = last.started_at + timedelta(seconds=interval), True
    else:
        next_run, estimated = None, True
    return {
        "enabled": bool(current_app.config["JOBWARDEN_MONITOR"]),
        "runs_here": here is not None,
        "interval_s": interval,
        "last_run": None
        if last is None
        else {
            "started_at": isoformat(last.started_at),
            "finished_at": isoformat(last.finished_at),
            "duration_ms": last.duration_ms,
            "trigger": last.trigger,
            "instance": last.instance,
            "changed": changed_count(last.changes) if last.changes else 0,
            "changes": {k: (v if isinstance(v, int) else len(v)) for k, v in (last.changes or {}).items()},
        },
        "next_run": isoformat(next_run),
        "next_run_estimated": estimated,
        # Two intervals without a pass: no monitor is running anywhere.
        "overdue": next_run is not None and now > next_run + timedelta(seconds=interval),
    }
