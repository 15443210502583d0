"""The `/alerts` dashboard page: the alert rules in words with how many of their alerts fire,
the add form, disable and enable, and remove (confirmed in the page). Admins only for changes (webapp.server.access);
others see the rules without the forms. What fires is on /health."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from ...domain.alerts import KIND_NAMES, RULE_KINDS
from ...domain.timeutil import utcnow
from ...jobs import alert_rules
from ...monitor import alerting
from .regions import render_region, wants_region
from .views import csrf_refused, dashboard_context

bp = Blueprint("alerts", __name__)
bp.context_processor(dashboard_context)
bp.register_error_handler(CSRFError, csrf_refused)


@bp.errorhandler(alert_rules.RuleNotFound)
def not_found(error: alert_rules.RuleNotFound):
    return render_template("error.html", message=str(error)), 404


def _page(status: int = 200, **shown):
    firing = alert_rules.firing_counts()
    rules = [alert_rules.rule_json(rule, firing.get(rule.id, 0)) for rule in alert_rules.all_rules()]
    return render_region(
        "alerts/index.html", "alerts/_region.html", rules=rules, kinds=KIND_NAMES, specs=RULE_KINDS, **shown
    ), status


def _number(raw: str | None, cast: type) -> object:
    """A form's number as given (the rule check names a bad one); blank is None (the kind's default)."""
    if raw is None or not raw.strip():
        return None
    try:
        return cast(raw)
    except ValueError:
        return raw


@bp.get("/alerts")
def index():
    return _page()


@bp.post("/alerts/rules")
def create():
    form = request.form
    try:
        rule = alert_rules.add(
            form.get("kind"),
            form.get("subject"),
            _number(form.get("threshold"), float),
            _number(form.get("window_s"), int),
            _number(form.get("min_jobs"), int),
        )
    except alert_rules.BadRule as error:
        return _page(400, error=f"{error.field}: {error}", form=form)
    message = f"Rule {rule.id} added: {alert_rules.rule_json(rule)['description']}."
    if wants_region():
        return _page(201, message=message)
    flash(message, "ok")
    return redirect(url_for("alerts.index"))


@bp.post("/alerts/rules/<job_id:rule_id>/disable")
def disable(rule_id: int):
    resolved = alerting.set_enabled(rule_id, False, utcnow())
    return _done(f"Rule {rule_id} disabled" + (f": {len(resolved)} firing alert(s) resolved." if resolved else "."))


@bp.post("/alerts/rules/<job_id:rule_id>/enable")
def enable(rule_id: int):
    alerting.set_enabled(rule_id, True, utcnow())
    return _done(f"Rule {rule_id} enabled: evaluated from the next monitor pass.")


@bp.post("/alerts/rules/<job_id:rule_id>/delete")
def delete(rule_id: int):
    alerting.remove_rule(rule_id, utcnow())
    return _done(f"Rule {rule_id} removed.")


def _done(message: str):
    if wants_region():
        return _page(message=message)
    flash(message, "ok")
    return redirect(url_for("alerts.index"))
