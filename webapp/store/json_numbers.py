"""JSON text for the store that PostgreSQL's `jsonb` gives back number for number.

`jsonb` keeps a number as `numeric`, which has no exponent: Python writes 1e16 as
`1e+16`, jsonb hands it back as `10000000000000000`, and a float read back became an
int (1e308 a 309-digit one, refused when sent again). `numeric` keeps a number's
digits after the point, though, so a float written with them comes back a float
with the same value: every float whose shortest form has a positive exponent (the
integral ones from 1e16 up) is written out positionally with ".0". Negative zero,
which `numeric` cannot hold, is written 0.0 on both databases alike. Every JSON
column is written through `dumps` (the engine's `json_serializer`), so payloads,
results, step results, checkpoints and webhook payloads keep their floats on both
databases (issue 24, item 7).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def dumps(value: Any) -> str:
    text = json.dumps(value)
    if "e+" not in text and "-0.0" not in text:
        return text  # no float that jsonb would change (the common case, at the C encoder's speed)
    return _positional(value)


def _positional(value: Any) -> str:
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(key)}: {_positional(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_positional(item) for item in value) + "]"
    return json.dumps(value)


def _key(key: Any) -> str:
    # As json.dumps writes a key: a string as it is, anything else as its JSON, quoted.
    return json.dumps(key if isinstance(key, str) else json.dumps(key))


def _float(number: float) -> str:
    if number == 0:
        return "0.0"
    shortest = repr(number)
    if "e+" not in shortest:
        return json.dumps(number)  # digits after the point already, or inf/nan as json.dumps writes them
    return f"{Decimal(shortest):f}.0"
