"""Alert rules, evaluated once per monitor pass: measure, then fire, re-notify or resolve.

Each rule kind is measured by a grouped read for all its subjects
(`webapp.jobs.alert_measures`), shared by the rules of that kind and window (and by the
kinds that read the same jobs). A breach (value ≥ threshold) with no firing alert fires
one; a firing alert whose value has
stayed below the threshold for JOBWARDEN_ALERT_RESOLVE_AFTER_S resolves (Prometheus'
`keep_firing_for`, Alertmanager's `resolve_timeout`: a value wavering about the
threshold stays one firing alert instead of flapping; `clear_since` holds when it went
below, and a breach empties it); one that keeps firing is notified again after
JOBWARDEN_ALERT_RENOTIFY_S. Every change is decided by one statement of
`webapp.store.alert_state` and notified (`alert.firing`, `alert.resolved`) in the pass's
transaction only when that statement returned the row: any number of replicas notify
once per change, and a replica killed mid-pass leaves neither change nor notification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from ..domain.alerts import ANY_SUBJECT, QUEUE_PREFIX, RULE_DISABLED, RULE_REMOVED
from ..domain.limits import COUNT_CAP
from ..jobs import alert_measures as measures
from ..jobs.alert_rules import alert_json, checked_enabled, delete_rule, locked
from ..jobs.series import oldest_ready_waits
from ..store import alert_state
from ..store.models import AlertRule
from ..store.transaction import unit_of_work
from ..webhooks.events import ALERT_FIRING, ALERT_RESOLVED
from ..webhooks.outbox import notify


@dataclass(frozen=True)
class AlertSettings:
    renotify: timedelta  # a firing alert is notified again after this long
    resolve_after: timedelta  # a firing alert resolves once its value stayed below the threshold this long
    worker_timeout_s: float  # a worker heard from within this is live (no_worker)
    no_worker_after_s: float  # a worker that left within this still serves its types (no_worker)
    history_kept: timedelta  # resolved alerts older than this are pruned


def alert_settings() -> AlertSettings:
    config = current_app.config
    return AlertSettings(
        renotify=timedelta(seconds=float(config["JOBWARDEN_ALERT_RENOTIFY_S"])),
        resolve_after=timedelta(seconds=float(config["JOBWARDEN_ALERT_RESOLVE_AFTER_S"])),
        worker_timeout_s=float(config["JOBWARDEN_HEARTBEAT_TIMEOUT"]),
        no_worker_after_s=float(config["JOBWARDEN_NO_WORKER_AFTER_S"]),
        history_kept=timedelta(days=float(config["JOBWARDEN_RETENTION_DAYS"])),
    )


@dataclass
class Outcome:
    fired: list[int] = field(default_factory=list)
    renotified: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)

    def json(self) -> dict[str, list[int]]:
        return {"fired": self.fired, "renotified": self.renotified, "resolved": self.resolved}


class _Measures:
    """One pass's measures: each kind read once for all its rules and windows."""

    def __init__(self, now: datetime, settings: AlertSettings, rules: list[alert_state.RuleRow]):
        self.now = now
        self.settings = settings
        self.windows = {
            kind: [r.window_s for r in rules if r.kind == kind] for kind in ("failure_rate", "worker_deaths")
        }
        self.schedules_named = {r.subject for r in rules if r.kind == "schedule_failing" and r.subject != ANY_SUBJECT}
        self.longest_streak = max([int(r.threshold) for r in rules if r.kind == "schedule_failing"] + [1])
        # no_worker's counts: exact up to COUNT_CAP, and far enough to decide every rule.
        self.most_unserved = max([math.ceil(r.threshold) for r in rules if r.kind == "no_worker"] + [COUNT_CAP])
        self.cache: dict[str, Any] = {}
        self.per_rule: dict[int, dict[str, float]] = {}  # each rule's values, worked out once a pass

    def _read(self, kind: str) -> Any:
        if kind not in self.cache:
            now = self.now
            self.cache[kind] = {
                "failure_rate": lambda: measures.failure_counts(now, self.windows["failure_rate"]),
                "queue_latency": lambda: oldest_ready_waits(now),
                "no_worker": lambda: measures.unserved(
                    now,
                    self.settings.worker_timeout_s,
                    self.most_unserved,
                    left_within_s=self.settings.no_worker_after_s,
                ),
                "stalled": lambda: measures.silences(now),
                "schedule_failing": lambda: measures.schedule_failures(now, self.schedules_named, self.longest_streak),
                "worker_deaths": lambda: measures.worker_deaths(now, self.windows["worker_deaths"]),
            }[kind]()
        return self.cache[kind]

    def values(self, rule: alert_state.RuleRow) -> dict[str, float]:
        """The rule's subjects and their values (`*`: every subject measured)."""
        if rule.id not in self.per_rule:
            self.per_rule[rule.id] = self._values(rule)
        return self.per_rule[rule.id]

    def _values(self, rule: alert_state.RuleRow) -> dict[str, float]:
        read = self._read(rule.kind)
        if rule.kind in self.windows:
            read = read[rule.window_s]
        if rule.kind == "failure_rate":
            read = {
                subject: failed / ran
                for subject, (failed, ran) in read.items()
                if ran
                and ran >= rule.min_jobs
                and (rule.subject != ANY_SUBJECT or not subject.startswith(QUEUE_PREFIX))
            }
        if rule.kind == "worker_deaths" and rule.subject == ANY_SUBJECT:
            return {ANY_SUBJECT: read.get(ANY_SUBJECT, 0.0)}
        if rule.subject == ANY_SUBJECT:
            return {subject: value for subject, value in read.items() if subject != ANY_SUBJECT}
        return {rule.subject: read.get(rule.subject, 0.0)}


def evaluate(now: datetime, settings: AlertSettings) -> Outcome:
    """Decide every rule's alerts, in the caller's transaction (the pass commits once)."""
    state = alert_state.pass_state(now - settings.history_kept)
    rules = state.rules
    by_id = {rule.id: rule for rule in rules}
    firing = {(alert.rule_id, alert.subject): alert for alert in state.firing}
    values = _Measures(now, settings, rules)
    outcome = Outcome()
    breaching: set[tuple[int, str]] = set()
    cutoff = now - settings.renotify
    due: dict[int, float] = {}  # firing alerts to notify again, with their values
    changed: dict[int, float] = {}  # firing alerts whose value moved
    back: list[int] = []  # firing alerts that were clearing and breach again
    for rule in rules:
        for subject, value in values.values(rule).items():
            if value < rule.threshold:
                continue
            breaching.add((rule.id, subject))
            current = firing.get((rule.id, subject))
            if current is None:
                fired = alert_state.fire(rule.id, subject, value, rule.threshold, now)
                if fired is not None:
                    notify(ALERT_FIRING, {"alert": alert_json(fired, rule)}, job_id=None, now=now)
                    outcome.fired.append(fired.id)
                continue
            if current.clear_since is not None:
                back.append(current.id)
            if current.notified_at <= cutoff:
                due[current.id] = value
            elif current.value != value:
                changed[current.id] = value
    # One statement each, whatever the number of alerts: the re-notifications claimed (the
    # statement re-checks notified_at, so one replica claims each), the values kept current.
    for again in alert_state.renotify(due, now, cutoff):
        notify(ALERT_FIRING, {"alert": alert_json(again, by_id[again.rule_id])}, job_id=None, now=now)
        outcome.renotified.append(again.id)
    clear_before = now - settings.resolve_after
    clearing: list[int] = []  # firing alerts whose value just went below the threshold
    for key, alert in firing.items():
        if key in breaching:
            continue
        rule = by_id[key[0]]
        value = values.values(rule).get(alert.subject, 0.0)
        if (alert.clear_since or now) > clear_before:  # not below long enough: still firing
            if alert.clear_since is None:
                clearing.append(alert.id)
            if alert.value != value:
                changed[alert.id] = value
            continue
        resolved = alert_state.resolve(alert.id, value, now, clear_before if settings.resolve_after else None)
        if resolved is not None:
            notify(ALERT_RESOLVED, {"alert": alert_json(resolved, rule)}, job_id=None, now=now)
            outcome.resolved.append(resolved.id)
    alert_state.clearing(clearing, now)
    alert_state.breaching_again(back)
    alert_state.measure(changed)
    if state.prunable:
        alert_state.prune(now - settings.history_kept)
    return outcome


def remove_rule(rule_id: int, now: datetime) -> list[int]:
    """Remove a rule (RuleNotFound if gone): its firing alerts resolve first, each notified
    `alert.resolved` once in the removal's own transaction, then the rule and its alerts'
    history go. The rule's row is locked first, so a pass firing one of its alerts at that
    moment either commits before (and its alert is resolved here) or fails on the gone rule;
    of two removals racing, the second finds no rule. The resolved alerts' ids."""
    with unit_of_work():
        rule = locked(rule_id)
        resolved = _resolve_alerts_of(rule, now, RULE_REMOVED)
        delete_rule(rule_id)
    return resolved


def set_enabled(rule_id: int, enabled: object, now: datetime) -> list[int]:
    """Enable or disable a rule (RuleNotFound if gone; BadRule if `enabled` is not a bool).
    Disabling resolves its firing alerts as removing it does (`alert.resolved` once each, in
    this transaction, under the rule's row lock) and keeps the rule and its history; the
    passes skip it until it is enabled again, and fire anew then. The resolved alerts' ids."""
    wanted = checked_enabled(enabled)
    with unit_of_work():
        rule = locked(rule_id)
        rule.enabled = wanted
        return [] if wanted else _resolve_alerts_of(rule, now, RULE_DISABLED)


def _resolve_alerts_of(rule: AlertRule, now: datetime, rule_change: str) -> list[int]:
    resolved = []
    for alert in alert_state.resolve_rule(rule.id, now, rule_change):
        notify(ALERT_RESOLVED, {"alert": alert_json(alert, rule)}, job_id=None, now=now)
        resolved.append(alert.id)
    return resolved
