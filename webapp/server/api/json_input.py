"""Strict JSON for request bodies: what a client sends must come back unchanged,
from either database, as JSON every reader parses.

So: no NaN or Infinity (also not as `1e999`, which Python reads as inf), no
lone surrogates (PostgreSQL cannot store them), nesting no deeper than
JOBWARDEN_MAX_JSON_DEPTH, no more than MAX_JSON_VALUES values in all, and integers in stored JSON within ±2^53, the range
every JSON reader (JavaScript, PostgreSQL's json functions, SQLite's) keeps exact.

Every check is one pass over the input: json's own C decoder parses (it stops
a nesting deeper than the interpreter's recursion limit with RecursionError),
then one walk over the parsed value checks depth, count and strings. The count
bounds what follows, which costs per value (validation, storing, answering):
2 MB of `[0,0,…]` (a million values) took 8.7 s to create on a loaded machine. A regex that
skipped strings before parsing rescanned to the end from every unterminated
quote: 32 KB of `\"` held the GIL for 1.8 s, 2 MB would have for hours
(docs/reliability.md, "Hardening probes").
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SAFE_INTEGER = 2**53
CONTAINERS = (dict, list)
CONTAINER_KINDS = frozenset(CONTAINERS)
# Raw UTF-8 cannot hold a surrogate, so a string can only hold one through a `\\uD800`–`\\uDFFF`
# escape; without one in the text no string needs checking.
ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class BadJson(ValueError):
    """The body cannot be used; the message says why."""


def loads(raw: bytes, *, max_depth: int, max_values: int | None) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadJson(f"not valid UTF-8 ({error})") from None
    with _no_cycle_collection():
        try:
            value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError:
            raise BadJson(f"nested deeper than {max_depth} levels") from None
        except ValueError as error:
            raise BadJson(f"not valid JSON ({error})") from None
        _check_shape(value, max_depth, max_values, escaped_surrogates=ESCAPED_SURROGATE.search(text) is not None)
    return value


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Parsed JSON holds no cycles, but each of its containers counts toward the garbage
    collector's next pass: 2 MB of `[[],[],…]` (700,000 lists) parsed in 1.0 s with collection
    and 0.3 s without. Re-enabled after, unless another request's parse had it off already."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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


def _check_shape(value: Any, max_depth: int, max_values: int | None, *, escaped_surrogates: bool) -> None:
    """One walk over the parsed value's containers: none deeper than `max_depth`, at most
    `max_values` values (containers, keys' values and items, the whole value included), and
    (when the text escapes a surrogate, the only way one gets in) every string valid Unicode.

    A container's children are sorted by kind in C (`map(type, …)`), so a list of a
    million numbers costs one pass in C, not a million steps of Python.
    """
    if isinstance(value, str):
        if escaped_surrogates:
            _valid_unicode(value)
        return
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, CONTAINERS) else []
    values = 1
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        values += len(children)
        if max_values is not None and values > max_values:
            raise BadJson(f"holds more than {max_values} JSON values")
        if escaped_surrogates and isinstance(item, dict):
            for key in item:
                _valid_unicode(key)
        kinds = set(map(type, children))
        if escaped_surrogates and str in kinds:
            for child in children:
                if isinstance(child, str):
                    _valid_unicode(child)
        if kinds & CONTAINER_KINDS:
            if depth == max_depth:
                raise BadJson(f"nested deeper than {max_depth} levels")
            # An empty child is as deep as its parent allows (checked just now) and holds nothing to walk.
            stack.extend((child, depth + 1) for child in children if child and type(child) in CONTAINER_KINDS)


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
