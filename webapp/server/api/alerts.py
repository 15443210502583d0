"""`/api/alert-rules` (add, list, enable or disable, remove) and `/api/alerts` (firing and recently resolved).

Viewers read, like `/api/health`; admins change the rules (webapp.server.access), as they
change schedules and webhooks.
"""

from __future__ import annotations

from flask import Blueprint

from ...domain.timeutil import utcnow
from ...jobs import alert_rules
from ...monitor import alerting
from . import alert_schemas as s
from .public import OPERATOR
from .spec import ApiError, operation

bp = Blueprint("alerts_api", __name__, url_prefix="/api")


@bp.errorhandler(alert_rules.RuleNotFound)
def not_found(error: alert_rules.RuleNotFound):
    return ApiError(404, "not_found", str(error))


@bp.errorhandler(alert_rules.BadRule)
def bad_rule(error: alert_rules.BadRule):
    return ApiError(400, "invalid", f"{error.field}: {error}", field=error.field)


@operation(
    bp,
    "POST",
    "/alert-rules",
    summary="Add an alert rule",
    body=s.CreateAlertRule,
    responses={201: ("Created", s.AlertRuleOut)},
    errors=(401, 403),
    security=OPERATOR,
)
def create_rule(body: s.CreateAlertRule):
    """The monitor evaluates it on its next pass; `alert.firing` and `alert.resolved` go through the webhooks."""
    rule = alert_rules.add(body.kind, body.subject, body.threshold, body.window_s, body.min_jobs, body.enabled)
    return alert_rules.rule_json(rule), 201


@operation(bp, "GET", "/alert-rules", summary="List alert rules", responses={200: s.AlertRuleList})
def list_rules():
    firing = alert_rules.firing_counts()
    return {"rules": [alert_rules.rule_json(rule, firing.get(rule.id, 0)) for rule in alert_rules.all_rules()]}


@operation(
    bp,
    "DELETE",
    "/alert-rules/<job_id:rule_id>",
    summary="Remove an alert rule: its firing alerts resolve (alert.resolved, once each), then its alerts go",
    responses={204: ("Removed", None)},
    errors=(401, 403, 404),
    security=OPERATOR,
)
def delete_rule(rule_id: int):
    alerting.remove_rule(rule_id, utcnow())
    return "", 204


@operation(
    bp,
    "PATCH",
    "/alert-rules/<job_id:rule_id>",
    summary="Enable or disable an alert rule: disabling resolves its firing alerts (alert.resolved, once each)",
    body=s.ChangeAlertRule,
    responses={200: ("Changed", s.AlertRuleOut)},
    errors=(401, 403, 404),
    security=OPERATOR,
)
def change_rule(rule_id: int, body: s.ChangeAlertRule):
    """A disabled rule is kept with its history and not evaluated; enabled again, it fires anew on the next pass."""
    alerting.set_enabled(rule_id, body.enabled, utcnow())
    return alert_rules.rule_json(alert_rules.one_rule(rule_id), alert_rules.firing_counts().get(rule_id, 0)), 200


@operation(bp, "GET", "/alerts", summary="Firing and recently resolved alerts", responses={200: s.AlertList})
def list_alerts():
    """Firing first (oldest first), then the most recently resolved."""
    return {"alerts": [alert_rules.alert_json(alert, rule) for alert, rule in alert_rules.recent_alerts()]}
