"""Every write a person or a token asks for is one audit entry, written after the answer
is decided: who (and how they signed in), when, from which address, the route and its
target, the reason they gave, and the outcome (`ok`, or the refusal: `403 forbidden`,
`409 conflict`, …). Nothing to remember per route: a route declared with a role in
webapp.server.access is audited. A view may add what the route alone does not say
(`note(outcome=…, target=…, data=…)`), e.g. a bulk action's ids and what it skipped.

Requests by nobody signed in are not recorded (scanners would fill the table); wrong
credentials are counted and limited instead (webapp.server.guesses). The entry is
written in its own transaction after the change committed: if the database fails in
between, the change stands without its entry, and the failure is logged.

On PostgreSQL a job's create writes its `ok` entry with the job instead (`entry_with_change`),
in its one statement. The create request then has nothing left to write after its commit,
while the worker woken by that commit claims the job on the same cores (its own transaction
after the commit was three more round trips and a second WAL flush beside the claim). An
entry written so is the request's only one. Not on SQLite: there a create's commit with no
write after it left a waiting claim in another process unwoken for over 7 s, twice in seven
runs of 200 pickups (never with the entry after the commit, whose write wakes the watcher).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from ..domain.roles import Role
from ..jobs import audit
from ..store.commit_hooks import after_commit
from ..store.extensions import db
from . import access, auth

log = logging.getLogger(__name__)
# The body the API's strict reader parsed (webapp.server.api.spec.json_body), kept for the reason
# here: parsed once; a body it refused is not there.
PARSED_BODY_KEY = "jobwarden.parsed_body"
MAX_REASON_CHARS = 2000
_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
NAMED_IN_ACTION = ("action",)
WRITTEN_KEY = "jobwarden.audit_written"  # in the request's environ: its entry committed with the change
NOTED_KEY = "jobwarden.audit_noted"  # in the request's environ, as webapp.server.auth keeps the principal  # path arguments that say what was done, not to what


def install(app: Flask) -> None:
    app.after_request(record_write)


def note(*, outcome: str | None = None, target: str | None = None, data: Any = None) -> None:
    """What this request's audit entry should say beyond the route (one call from a view)."""
    noted = request.environ.setdefault(NOTED_KEY, {})
    given = {"outcome": outcome, "target": target, "data": data}
    noted.update({key: value for key, value in given.items() if value is not None})


def entry_with_change() -> dict[str, Any] | None:
    """This request's `ok` entry, for the view to write in the transaction of its change
    (None when no person acts, and on SQLite: see above); once that transaction commits,
    `record_write` writes no other.
    Call it when nothing but a failure of the change itself can refuse the request."""
    principal = _acting_person()
    if principal is None or db.session.get_bind().dialect.name != "postgresql":
        return None
    environ = request.environ
    after_commit(lambda: environ.__setitem__(WRITTEN_KEY, True))
    return audit.entry(**_described(principal), outcome="ok")


def record_write(response: Response) -> Response:
    if request.environ.get(WRITTEN_KEY):
        return response  # committed with the change (entry_with_change)
    principal = _acting_person()
    if principal is None:
        return response
    try:
        audit.record(
            **_described(principal), outcome=request.environ.get(NOTED_KEY, {}).get("outcome") or _outcome(response)
        )
    except SQLAlchemyError as error:
        log.error("the audit entry of %s %s was not written: %s", request.method, request.path, error)
    return response


def _acting_person() -> auth.Principal | None:
    """Who acts in this write request, or None when no person does (a read, a public or worker
    route, nobody signed in)."""
    if not auth.is_write() or request.url_rule is None or request.endpoint is None:
        return None
    if not isinstance(access.level_for(request.endpoint, request.method), Role):
        return None  # public and worker routes: no person acts
    principal = auth.decided_principal()
    if principal is None or principal.via == auth.ANONYMOUS:
        return None
    return principal


def _described(principal: auth.Principal) -> dict[str, Any]:
    """The entry but its outcome."""
    noted = request.environ.get(NOTED_KEY, {})
    return {
        "actor": principal.name or auth.OPEN,
        "via": principal.via,
        "action": _action(),
        "target": noted.get("target") or _target(),
        "reason": _reason(),
        "address": request.remote_addr,
        "data": noted.get("data"),
    }


def _action() -> str:
    """`POST /api/jobs/<job_id>/cancel`: the route, with the arguments that name the action filled in."""
    args = request.view_args or {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(args[name]) if name in NAMED_IN_ACTION and name in args else f"<{name}>"

    return f"{request.method} {_ARGUMENT.sub(fill, str(request.url_rule))}"


def _target() -> str | None:
    args = {name: value for name, value in (request.view_args or {}).items() if name not in NAMED_IN_ACTION}
    return ", ".join(f"{name}={value}" for name, value in args.items()) or None


def _reason() -> str | None:
    """The `reason` of the JSON body as the API read it (never parsed again here: a hostile body
    costs its reader once, and one the reader refused gives none) or of the form; none from a
    body the request could not read (413)."""
    given: Any = None
    try:
        if request.mimetype == "application/json":
            body = request.environ.get(PARSED_BODY_KEY)
            given = body.get("reason") if isinstance(body, dict) else None
        else:
            given = request.form.get("reason")
    except HTTPException:
        return None
    return given.strip()[:MAX_REASON_CHARS] or None if isinstance(given, str) else None


def _outcome(response: Response) -> str:
    if response.status_code < 400:
        return "ok"
    error = response.get_json(silent=True) if response.is_json else None
    name = error.get("error") if isinstance(error, dict) else None
    return f"{response.status_code} {name or response.status.partition(' ')[2].lower()}"
