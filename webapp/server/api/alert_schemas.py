"""The alert API's request and answer models (validation and the OpenAPI document).

Kinds, ranges and subjects are checked once, by `webapp.jobs.alert_rules.check`, which
the CLI and the dashboard's form share; here only the JSON shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictBool

from ...domain.alerts import ALERT_STATES, KIND_NAMES, MAX_SUBJECT_LENGTH
from .schemas import Body

RuleKind = Literal[KIND_NAMES]  # type: ignore[valid-type]
AlertState = Literal[ALERT_STATES]  # type: ignore[valid-type]


class CreateAlertRule(Body):
    kind: RuleKind = Field(description="What is measured: " + ", ".join(KIND_NAMES) + ".")
    subject: str = Field(
        "*",
        max_length=MAX_SUBJECT_LENGTH,
        description="A type, queue (or queue:NAME for failure_rate) or schedule name, or `*`.",
    )
    threshold: float = Field(description="Fires when the measure is at least this (a failure rate: 0.5 is 50 %).")
    window_s: int | None = Field(None, description="failure_rate and worker_deaths: the window counted, seconds.")
    min_jobs: int | None = Field(None, description="failure_rate: fewer finished jobs in the window never fire.")
    enabled: StrictBool = Field(True, description="false: kept, not evaluated (nothing fires) until enabled.")


class ChangeAlertRule(Body):
    enabled: StrictBool = Field(
        description="false disables the rule: its firing alerts resolve (alert.resolved, once each) and it is "
        "not evaluated until enabled again (true)."
    )


class AlertRuleOut(BaseModel):
    id: int
    kind: str
    subject: str
    threshold: float
    window_s: int
    min_jobs: int
    enabled: bool
    description: str
    firing: int
    created_at: str


class AlertRuleList(BaseModel):
    rules: list[AlertRuleOut]


class AlertOut(BaseModel):
    id: int
    rule: int
    kind: str
    rule_description: str
    subject: str
    state: AlertState
    since: str
    resolved_at: str | None
    value: float
    threshold: float
    clear_since: str | None = Field(
        description="while firing: since when the value has been below the threshold (null: it breaches); "
        "the alert resolves once that lasts JOBWARDEN_ALERT_RESOLVE_AFTER_S (default 300 s)"
    )
    message: str


class AlertList(BaseModel):
    alerts: list[AlertOut]
