"""Request bodies an attacker would send to make the input checks slow: one source for
the test (tests/test_hostile_bodies.py, at the body limit) and the timing run
(benchmarks/hostile_bodies.py, at several sizes)."""

from __future__ import annotations

from collections.abc import Callable

from webapp.config import from_environment
from webapp.domain.limits import MAX_JSON_VALUES

BODY_LIMIT: int = from_environment({})["MAX_CONTENT_LENGTH"]


def _numbered_keys(size: int) -> bytes:
    """An object of as many distinct short keys as `size` bytes hold (a repeated key collapses to one)."""
    prefix, suffix, keys, length = '{"type":"x","payload":{', "}}", [], 0
    room = size - len(prefix) - len(suffix)
    while True:
        key = f'"{len(keys):x}":0'
        if length + len(key) + 1 > room:
            return (prefix + ",".join(keys) + suffix).encode()
        keys.append(key)
        length += len(key) + 1


def _filled(prefix: str, unit: str, suffix: str = "") -> Callable[[int], bytes]:
    """A body of at most `size` bytes: `prefix`, then `unit` repeated, then `suffix`."""

    def build(size: int) -> bytes:
        room = size - len(prefix) - len(suffix)
        return (prefix + unit * (room // len(unit)) + suffix).encode()

    return build


def at_the_value_cap() -> bytes:
    """The costliest body the public API accepts: MAX_JSON_VALUES values, all but 3 of them
    (the object, its two members, the array) tiny numbers."""
    return ('{"type":"x","payload":[' + ",".join(["0"] * (MAX_JSON_VALUES - 3)) + "]}").encode()


SHAPES: dict[str, Callable[[int], bytes]] = {
    "escaped quotes, unterminated": _filled('{"type":"x","payload":"', '\\"'),
    "backslashes, unterminated": _filled('{"type":"x","payload":"', "\\"),
    "quotes only": _filled("", '"'),
    "unterminated string": _filled('{"type":"x","payload":"', "a"),
    "deep nesting": _filled('{"type":"x","payload":', "["),
    "deep nesting, closed": _filled('{"type":"x","payload":', "[", "]" * 40 + "}"),
    "brackets inside a string": _filled('{"type":"x","payload":"', "[{"),
    "long number": _filled('{"type":"x","payload":', "1", "}"),
    "long fraction": _filled('{"type":"x","payload":0.', "1", "}"),
    "long exponent": _filled('{"type":"x","payload":1e', "9", "}"),
    "one key many times": _filled('{"type":"x","payload":{"k":0', ',"k":0', "}}"),
    "escaped surrogates": _filled('{"type":"x","payload":["\\ud800"', ',"\\ud800"', "]}"),
    "escaped NULs": _filled('{"type":"x","payload":"', "\\u0000", '"}'),
    "long type": _filled('{"payload":null,"type":"', "t", '"}'),
    # Valid JSON that costs per value: a million tiny values in 2 MB.
    "many tiny numbers": _filled('{"type":"x","payload":[0', ",0", "]}"),
    "many empty arrays": _filled('{"type":"x","payload":[[]', ",[]", "]}"),
    "many empty strings": _filled('{"type":"x","payload":[""', ',""', "]}"),
    "many distinct keys": _numbered_keys,
}
