"""Checks on query-string and form parameters, shared by the API, the dashboard and
the store's queries: repeated parameters are de-duplicated and capped, text is
what the database can hold, ids are ASCII digits in 64 bits, and a cursor's
position has the type of the column it sorts by. A refusal names the parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import current_app

from ..domain.timeutil import in_utc

MAX_ID = 2**63 - 1
MAX_TEXT = 200
MAX_CURSOR = 500
INT32 = 2**31 - 1
TEXT_SORTS = ("type", "status")
TIME_SORTS = ("created_at", "updated_at")


class BadQuery(ValueError):
    """A parameter cannot be used; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class MalformedParameter(BadQuery):
    """A value no page of this app sends (as opposed to a choice that matches nothing)."""


def max_list_values() -> int:
    return int(current_app.config["JOBWARDEN_MAX_LIST_VALUES"])


def unique_values(field: str, values: Iterable[str], cap: int | None = None) -> list[str]:
    """Non-empty values once each, in the order given; more than `cap` sent is refused."""
    values = list(values)
    cap = max_list_values() if cap is None else cap
    if len(values) > cap:
        raise MalformedParameter(field, f"at most {cap} values, got {len(values)}")
    return list(dict.fromkeys(value for value in values if value))


def text(field: str, value: str | None, max_length: int = MAX_TEXT) -> str | None:
    """Free text the database can store and compare, or None when empty."""
    if not value:
        return None
    if len(value) > max_length:
        raise MalformedParameter(field, f"at most {max_length} characters")
    if "\x00" in value:
        raise MalformedParameter(field, "must not contain NUL characters")
    if not is_valid_unicode(value):
        raise MalformedParameter(field, "must be valid Unicode text")
    return value


def is_valid_unicode(value: str) -> bool:
    """False for a string holding a lone surrogate (which no database can store)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_job_id(value: str) -> bool:
    """ASCII digits of a positive 64-bit id (`str.isdigit` also accepts "²" and "①")."""
    return value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID


def job_ids(field: str, values: Iterable[str], cap: int) -> list[int]:
    ids = unique_values(field, values, cap)
    if not all(is_job_id(value) for value in ids):
        raise MalformedParameter(field, "job ids are positive whole numbers (ASCII digits) below 2^63")
    return [int(value) for value in ids]


def cursor_position(sort: str, value: Any, job_id: Any) -> tuple[Any, int]:
    """A decoded cursor's (value, id), if the value has the sort column's type; else refused.

    The cursor is opaque to clients but arrives from them: a forged one must be a
    400, not a database error (PostgreSQL compares types strictly, SQLite binds
    only scalars, and neither takes integers past 64 bits).
    """
    if not _is_int(job_id, 0, MAX_ID):
        raise MalformedParameter("cursor", "cursor is not one this server issued")
    if sort == "id":
        ok = _is_int(value, 0, MAX_ID)
    elif sort == "priority":
        ok = _is_int(value, -INT32, INT32)
    elif sort in TIME_SORTS:
        ok = isinstance(value, datetime) and value.tzinfo is not None and in_utc(value) is not None
    elif sort in TEXT_SORTS:
        ok = isinstance(value, str) and len(value) <= MAX_TEXT and "\x00" not in value and is_valid_unicode(value)
    else:
        ok = False
    if not ok:
        raise MalformedParameter("cursor", f"cursor is not one this server issued for sort={sort}")
    return value, job_id


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
