"""The audit trail: every change made by a person or a token, and every one refused to
them, as one appended row. The app never updates or deletes these rows (only
`write` and webapp.store.audit_rows insert them); retention, if wanted, is the database administrator's.

`record` is the one call: the server calls it once per write request
(webapp.server.audit_trail), the command line for `jobwarden users`. A job's create
request instead hands its `entry` to the create, which writes it in its own transaction
(in its own statement on PostgreSQL: webapp.store.audit_rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..domain.timeutil import isoformat, utcnow
from ..store import audit_rows
from ..store.column_limits import column_length
from ..store.extensions import db
from ..store.models import AuditEntry
from ..store.transaction import unit_of_work

MAX_LIMIT = 500
# Each text is cut to its column (a long target or address is recorded, shortened, never refused).
TEXT_CAPS = {
    name: column_length(getattr(AuditEntry, name))
    for name in ("actor", "via", "action", "target", "address", "outcome")
}


def entry(
    *,
    actor: str,
    via: str,
    action: str,
    target: str | None = None,
    reason: str | None = None,
    address: str | None = None,
    outcome: str = "ok",
    data: Any = None,
) -> dict[str, Any]:
    """One entry's row, stamped now, each text cut to its column (a `data` of None is JSON null)."""
    values = {"actor": actor, "via": via, "action": action, "target": target, "address": address, "outcome": outcome}
    capped = {key: value[: TEXT_CAPS[key]] if isinstance(value, str) else value for key, value in values.items()}
    return {"at": utcnow(), "reason": reason, "data": data, **capped}


def write(row: dict[str, Any]) -> None:
    """Append an `entry` in the caller's transaction."""
    db.session.execute(audit_rows.INSERT, row)


def record(**given: Any) -> None:
    """Append one entry (`entry`'s arguments), in its own transaction (or the caller's unit of work)."""
    with unit_of_work(one_statement=True):
        write(entry(**given))


@dataclass
class AuditFilter:
    actor: str | None = None
    action: str | None = None  # a part of the action
    target: str | None = None  # a part of the target
    outcome: str | None = None  # `ok`, or a part of a refusal
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # the next page: entries older than this one


def entries(wanted: AuditFilter, limit: int = 100) -> list[AuditEntry]:
    """Newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(min(limit, MAX_LIMIT))
    if wanted.actor:
        query = query.where(AuditEntry.actor == wanted.actor)
    for column, part in ((AuditEntry.action, wanted.action), (AuditEntry.target, wanted.target)):
        if part:
            query = query.where(column.contains(part, autoescape=True))
    if wanted.outcome:
        query = query.where(AuditEntry.outcome.contains(wanted.outcome, autoescape=True))
    if wanted.since:
        query = query.where(AuditEntry.at >= wanted.since)
    if wanted.until:
        query = query.where(AuditEntry.at < wanted.until)
    if wanted.before_id:
        query = query.where(AuditEntry.id < wanted.before_id)
    return list(db.session.execute(query).scalars())


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": isoformat(entry.at),
        "actor": entry.actor,
        "via": entry.via,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "address": entry.address,
        "outcome": entry.outcome,
        "data": entry.data,
    }
