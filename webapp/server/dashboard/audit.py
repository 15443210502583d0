"""The `/audit` page (admins): the audit trail, newest first, filtered by actor, action,
target and outcome, paged by `before` (the oldest id shown)."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from ...jobs import audit, query_params
from .views import dashboard_context

bp = Blueprint("audit", __name__)
bp.context_processor(dashboard_context)
PAGE_SIZE = 100
FILTERS = ("actor", "action", "target", "outcome")


@bp.get("/audit")
def index():
    try:
        given = {name: query_params.text(name, request.args.get(name)) for name in FILTERS}
        before = (
            query_params.job_ids("before", [request.args["before"]], cap=1)[0] if request.args.get("before") else None
        )
    except query_params.BadQuery as error:
        return render_template("error.html", message=f"{error.field}: {error}"), 400
    wanted = audit.AuditFilter(
        actor=given["actor"], action=given["action"], target=given["target"], outcome=given["outcome"], before_id=before
    )
    rows = audit.entries(wanted, limit=PAGE_SIZE)
    older = (
        {name: value for name, value in given.items() if value} | {"before": rows[-1].id}
        if len(rows) == PAGE_SIZE
        else None
    )
    return render_template("audit/index.html", rows=rows, given=given, older_args=older)
