"""Strict JSON for request bodies: what a client sends must come back unchanged,
from either database, as JSON every reader parses.

So: no NaN or Infinity (also not as `1e999`, which Python reads as inf), no
lone surrogates (PostgreSQL cannot store them), nesting no deeper than
JOBWARDEN_MAX_JSON_DEPTH (deeper is refused before Python's parser would
recurse out), and integers in stored JSON within ±2^53, the range every JSON
reader (JavaScript, PostgreSQL's json functions, SQLite's) keeps exact.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

SAFE_INTEGER = 2**53
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
BRACKETS = re.compile(r"[][{}]")


class BadJson(ValueError):
    """The body cannot be used; the message says why."""


def loads(raw: bytes, *, max_depth: int) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadJson(f"not valid UTF-8 ({error})") from None
    _check_depth(text, max_depth)
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadJson(f"nested deeper than {max_depth} levels") from None
    except ValueError as error:
        raise BadJson(f"not valid JSON ({error})") from None
    _check_strings(value)
    return value


def safe_integers(value: Any) -> Any:
    """A pydantic validator for stored JSON: integers beyond ±2^53 are refused, not rounded."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not -SAFE_INTEGER <= item <= SAFE_INTEGER:
            raise ValueError(f"integers must lie within ±2^53 to keep their exact value, got {item}")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _check_depth(text: str, max_depth: int) -> None:
    """Refuse deep nesting by counting brackets outside strings, before parsing."""
    depth = 0
    for bracket in BRACKETS.findall(STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > max_depth:
            raise BadJson(f"nested deeper than {max_depth} levels")


def _check_strings(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _valid_unicode(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _valid_unicode(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _valid_unicode(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadJson("strings must be valid Unicode (a lone surrogate \\ud800–\\udfff is not)") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range: numbers must be finite")
    return number
