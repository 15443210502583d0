"""Size caps on what a durable step stores, shared by the worker (which refuses
first, naming the step) and the server (which refuses what a worker sent anyway)."""

from __future__ import annotations

import json
from typing import Any

MAX_STEP_RESULT_BYTES = 64 * 1024
MAX_CHECKPOINT_BYTES = 64 * 1024


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (TypeError or ValueError when it is not JSON)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
