"""The `/queues` dashboard page: each queue's depth, running against its limit, oldest
waiting age, throughput of the last hour and pause; Pause and Resume ask first in the
in-page dialog, and limits are edited in a form (operators only; a refusal names the field)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_wtf.csrf import CSRFError

from ...domain.actors import OPERATOR
from ...jobs import queues
from ...jobs.query_params import BadQuery
from .. import auth
from .regions import render_region, wants_region
from .views import csrf_refused, dashboard_context

bp = Blueprint("queues", __name__)
bp.context_processor(dashboard_context)
bp.register_error_handler(CSRFError, csrf_refused)


@dataclass(frozen=True)
class Confirmation:
    button: str
    question: str  # "{queue}" names the queue
    consequence: str

    def text(self, view: queues.QueueView) -> str:
        return f"{self.question.format(queue=f'queue {view.name} ({view.queued} queued)')} {self.consequence}"


CONFIRMATIONS = {
    "pause": Confirmation(
        "Pause queue", "Pause {queue}?", "Workers take none of its jobs until it is resumed; running jobs go on."
    ),
    "resume": Confirmation("Resume queue", "Resume {queue}?", "Workers take its jobs again at once."),
}


def _page(status: int = 200, **shown: Any):
    context = dict(queues=queues.list_queues(), confirmations=CONFIRMATIONS, **shown)
    return render_region("queues/index.html", "queues/_region.html", **context), status


def _done(message: str):
    if wants_region():
        return _page(message=message)
    flash(message, "ok")
    return redirect(url_for("queues.index"))


def _refused(error: BadQuery):
    if wants_region():
        return _page(400, error=f"{error.field}: {error}")
    flash(f"Nothing was changed — {error.field}: {error}", "refused")
    return redirect(url_for("queues.index")), 400


@bp.get("/queues")
def index():
    return _page()


@bp.post("/queues/<name>/<any(pause, resume):action>")
def pause_or_resume(name: str, action: str):
    change = queues.pause if action == "pause" else queues.resume
    try:
        change(name, actor=auth.acting_as(OPERATOR), reason=_reason())
    except BadQuery as error:
        return _refused(error)
    return _done(f"Queue {name}: {action}d.")


@bp.post("/queues/<name>/limits")
def set_limits(name: str):
    """Each field: a whole number, or empty for no limit; the rate limit needs both of its fields."""
    try:
        changes: dict[str, Any] = {
            "concurrency": _number("concurrency"),
            "key_concurrency": _number("key_concurrency"),
        }
        limit, period = _number("rate_limit.limit"), _number("rate_limit.period_s", float)
        if (limit is None) != (period is None):
            raise BadQuery("rate_limit", "give both the limit and the period, or neither")
        changes["rate_limit"] = None if limit is None else {"limit": limit, "period_s": period}
        queues.set_limits(name, changes, actor=auth.acting_as(OPERATOR), reason=_reason())
    except BadQuery as error:
        return _refused(error)
    return _done(f"Queue {name}: limits saved; they hold from the next claim.")


def _number(field: str, kind: type = int) -> Any:
    text = (request.form.get(field) or "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise BadQuery(field, "a number, or empty for no limit") from None


def _reason() -> str | None:
    return (request.form.get("reason") or "").strip()[:2000] or None
