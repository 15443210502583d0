"""Keyset cursors: the position after a page's last row, opaque to clients."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from .filters import BadQuery


def encode_cursor(value: Any, job_id: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    raw = json.dumps([value, job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, job_id = json.loads(raw)
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["t"])
        if not isinstance(job_id, int):
            raise ValueError
        return value, job_id
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise BadQuery("cursor", "cursor is not one this server issued") from None
