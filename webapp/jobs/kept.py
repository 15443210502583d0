"""Values a serving process keeps in memory, within a budget of bytes: what it kept least
recently read goes first. One per kind and app (in the app's extensions), so each test's app
has its own and a process's threads share one (under a lock)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from flask import current_app

V = TypeVar("V")


class Kept(Generic[V]):
    """Values by key, at most `budget` bytes in all (each put with its size): the least
    recently read go first."""

    def __init__(self, budget: int):
        self._budget = budget
        self._held: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # gunicorn's threads share the process's values

    @property
    def size(self) -> int:
        return self._size

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            kept = self._held.get(key)
            if kept is None:
                return None
            self._held.move_to_end(key)
            return kept[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        """Keep `value` under `key` (in place of what was), unless it is bigger than the budget."""
        with self._lock:
            self._drop(key)
            if size > self._budget:
                return
            self._held[key] = (value, size)
            self._size += size
            while self._size > self._budget:
                _, (_, dropped) = self._held.popitem(last=False)
                self._size -= dropped

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: Hashable) -> None:
        kept = self._held.pop(key, None)
        if kept is not None:
            self._size -= kept[1]


def kept(name: str, budget: int) -> Kept[Any]:
    """This app's kept values of one kind (one app per serving process; each test's app its own)."""
    kept: Kept[Any] | None = current_app.extensions.get(name)
    if kept is None:  # two threads may get here at once: setdefault keeps the first one made
        kept = current_app.extensions.setdefault(name, Kept[Any](budget))
    return kept
