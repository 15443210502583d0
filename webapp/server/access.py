"""What each route needs, declared once, and the one hook that enforces it.

`ROUTES` names every endpoint of the app with the level it needs: PUBLIC (anyone, e.g.
/login, /healthz), WORKER (the internal key, checked by the worker API itself), or a
role (webapp.domain.roles). An endpoint missing from the table is refused to everybody
(fail closed), and tests/test_access_matrix.py fails for it: a new route is declared
here with one line, or it does not work.

`enforce` runs before every view, in this order: a write from another site is refused
(403), an API write not declared JSON is refused (415), a read-only deployment refuses
every write (403), then the role: nobody signed in gets 401 on the API (asking for
credentials) and the sign-in page on the dashboard; a signed-in person whose role is too
low gets 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from flask import Flask, Response, jsonify, redirect, render_template, request, url_for

from ..domain.roles import Role
from . import auth

VIEWER, OPERATOR, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMIN


class Open(Enum):
    PUBLIC = "public"  # anyone: sign-in pages, liveness, metrics, static files
    WORKER = "worker"  # the workers' internal key, checked by their own API


PUBLIC, WORKER = Open.PUBLIC, Open.WORKER
Level = Role | Open


@dataclass(frozen=True)
class Needs:
    """The level a route needs to read (GET, HEAD) and to write (any other method)."""

    read: Level
    write: Level


def needs(level: Level, *, write: Level | None = None) -> Needs:
    return Needs(read=level, write=write if write is not None else level)


# endpoint → what it needs. One line per route; see the module's docstring.
ROUTES: dict[str, Needs] = {
    # static files, sign-in, liveness and metrics
    "static": needs(PUBLIC),
    "vendor.static": needs(PUBLIC),
    "vendor_idiomorph.static": needs(PUBLIC),
    "dashboard.login": needs(PUBLIC),
    "dashboard.logout": needs(PUBLIC),
    "oidc.start": needs(PUBLIC),
    "oidc.callback": needs(PUBLIC),
    "ops.healthz": needs(PUBLIC),
    "ops.openapi": needs(PUBLIC),
    "ops.prometheus_metrics": needs(PUBLIC),
    # the workers' API
    "internal.claim": needs(WORKER),
    "internal.complete": needs(WORKER),
    "internal.fail": needs(WORKER),
    "internal.heartbeat": needs(WORKER),
    "internal.reports": needs(WORKER),
    "internal.start": needs(WORKER),
    "internal.step": needs(WORKER),
    "internal.stopped": needs(WORKER),
    "internal.log": needs(WORKER),
    "internal.worker_goodbye": needs(WORKER),
    "internal.worker_heartbeat": needs(WORKER),
    "internal.worker_presence": needs(WORKER),
    "schedules_internal.sync_schedules": needs(WORKER),
    # jobs: viewers read, operators act
    "api.list_jobs": needs(VIEWER),
    "api.get_job": needs(VIEWER),
    "api.job_events": needs(VIEWER),
    "api.job_log": needs(VIEWER),
    "api.health": needs(VIEWER),
    "api.create_job": needs(OPERATOR),
    "api.create_jobs": needs(OPERATOR),
    "api.bulk_action": needs(OPERATOR),
    "api.cancel": needs(OPERATOR),
    "api.run_now": needs(OPERATOR),
    "api.force_start": needs(OPERATOR),
    "api.mark_failed": needs(OPERATOR),
    "api.resume": needs(OPERATOR),
    "api.restart": needs(OPERATOR),
    "api.cleanup": needs(OPERATOR),
    "dashboard.index": needs(VIEWER),
    "dashboard.job_list": needs(VIEWER),
    "dashboard.job_counts": needs(VIEWER),
    "dashboard.job_page": needs(VIEWER),
    "dashboard.job_log_lines": needs(VIEWER),
    "dashboard.health": needs(VIEWER),
    "dashboard.stats": needs(VIEWER),
    "dashboard.job_action": needs(OPERATOR),
    "dashboard.bulk_action": needs(OPERATOR),
    # schedules and queues: viewers read, admins change
    "schedules_api.list_schedules": needs(VIEWER),
    "schedules_api.get_schedule": needs(VIEWER),
    "schedules_api.create_schedule": needs(ADMIN),
    "schedules_api.change_schedule": needs(ADMIN),
    "schedules_api.delete_schedule": needs(ADMIN),
    "schedules_api.pause_schedule": needs(ADMIN),
    "schedules_api.resume_schedule": needs(ADMIN),
    "schedules_api.trigger_schedule": needs(ADMIN),
    "schedules.index": needs(VIEWER),
    "schedules.create": needs(ADMIN),
    "schedules.edit": needs(ADMIN),
    "schedules.act": needs(ADMIN),
    "queues_api.list_queues": needs(VIEWER),
    "queues_api.set_limits": needs(ADMIN),
    "queues_api.pause": needs(ADMIN),
    "queues_api.resume": needs(ADMIN),
    "queues.index": needs(VIEWER),
    "queues.pause_or_resume": needs(ADMIN),
    "queues.set_limits": needs(ADMIN),
    # webhooks: admins only, reads too (a receiver's URL can be a credential)
    "webhooks_api.create_webhook": needs(ADMIN),
    "webhooks_api.list_webhooks": needs(ADMIN),
    "webhooks_api.delete_webhook": needs(ADMIN),
    "webhooks_api.enable_webhook": needs(ADMIN),
    "webhooks_api.rotate_secret": needs(ADMIN),
    "webhooks_api.list_deliveries": needs(ADMIN),
    "webhooks_api.redeliver": needs(ADMIN),
    "webhooks.index": needs(ADMIN),
    "webhooks.deliveries": needs(ADMIN),
    "webhooks.create": needs(ADMIN),
    "webhooks.delete": needs(ADMIN),
    "webhooks.enable": needs(ADMIN),
    "webhooks.rotate_secret": needs(ADMIN),
    "webhooks.redeliver": needs(ADMIN),
    # alerts: viewers read, admins change the rules
    "alerts_api.list_rules": needs(VIEWER),
    "alerts_api.list_alerts": needs(VIEWER),
    "alerts_api.create_rule": needs(ADMIN),
    "alerts_api.delete_rule": needs(ADMIN),
    "alerts_api.change_rule": needs(ADMIN),
    "alerts.index": needs(VIEWER),
    "alerts.create": needs(ADMIN),
    "alerts.delete": needs(ADMIN),
    "alerts.enable": needs(ADMIN),
    "alerts.disable": needs(ADMIN),
    # identity: tokens (an operator's own; an admin's for anyone), the audit trail
    "identity_api.create_token": needs(OPERATOR),
    "identity_api.list_tokens": needs(OPERATOR),
    "identity_api.revoke_token": needs(OPERATOR),
    "identity_api.list_users": needs(ADMIN),
    "identity_api.list_audit": needs(ADMIN),
    "audit.index": needs(ADMIN),
}


def level_for(endpoint: str, method: str) -> Level | None:
    """What `method` on `endpoint` needs; None when the endpoint is not declared."""
    declared = ROUTES.get(endpoint)
    if declared is None:
        return None
    return declared.read if method in auth.SAFE_METHODS else declared.write


def install(app: Flask) -> None:
    """Run `enforce` before every view (after CSRF, which flask-wtf checks first)."""
    app.before_request(enforce)


def _is_api() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/metrics")


def enforce() -> Response | None:
    if request.url_rule is None or request.endpoint is None:
        return None  # 404 and 405 answer by themselves
    write = auth.is_write()
    refusal = _foreign_write_refusal() if write else None
    if refusal is not None:
        return refusal
    level = level_for(request.endpoint, request.method)
    if level is None:
        return _refuse(403, "undeclared", f"{request.endpoint} declares no access level (webapp.server.access)")
    if isinstance(level, Open):
        return None
    if (write or level is ADMIN) and not auth.writes_allowed():
        # Management is done elsewhere: its reads too (a webhook's URL can be a credential).
        return _refuse(403, "read_only", "this deployment is read-only (JOBWARDEN_READ_ONLY)")
    principal = auth.current_principal()
    if principal.may(level):
        return None
    if principal.name is None:
        return _sign_in_first(write)
    return _refuse(403, "forbidden", f"this needs the {level.label} role; {principal.name} is {_role_of(principal)}")


def _role_of(principal: auth.Principal) -> str:
    return f"a {principal.role.label}" if principal.role is not None else "without a role"


def _foreign_write_refusal() -> Response | None:
    """No HTML form on any website can act through a person's browser: a write from another
    site is a 403, and an API write not declared JSON a 415 (even with no body), before
    credentials are looked at. Scripts, the CLI and workers send JSON and no Origin."""
    reason = auth.cross_site_reason()
    if reason is not None:
        if _is_api():
            return _refuse(403, "cross_site", f"{reason}; the API accepts writes only from this site or from scripts")
        return _refuse(403, "cross_site", reason)
    if _is_api() and auth.form_could_send() and not auth.json_content_type():
        return _refuse(
            415, "unsupported_media_type", "send writes with Content-Type: application/json (an empty body too)"
        )
    return None


def _refuse(status: int, error: str, message: str) -> Response:
    if _is_api():  # the API's error shape (webapp.server.api.spec.ApiError), which imports the routes
        answer = jsonify({"error": error, "message": message})
        answer.status_code = status
        return answer
    response = render_template("error.html", message=f"Refused: {message}.")
    return Response(response, status=status)


def _sign_in_first(write: bool) -> Response:
    """Nobody signed in: the API asks for credentials (401), a page for a sign-in."""
    if _is_api():
        refusal = _refuse(
            401, "unauthorized", "sign in: Authorization: Bearer jw_… (an API token) or HTTP Basic NAME:password"
        )
        refusal.headers["WWW-Authenticate"] = 'Basic realm="jobwarden"'
        return refusal
    if write:
        return _refuse(403, "forbidden", "sign in first")
    return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]
