"""Looking at processes from the outside, as an operator would. `alive` and `marked` are the
benchmarks' (they run without the test suite, so the tests use theirs)."""

from __future__ import annotations

from pathlib import Path

from benchmarks._support import alive, marked

__all__ = ["alive", "marked", "zombie_children"]


def zombie_children(pid: int) -> list[int]:
    """Children of `pid` that ended and were not reaped."""
    zombies = []
    for entry in Path("/proc").iterdir():
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if state == "Z" and int(parent) == pid:
            zombies.append(int(entry.name))
    return zombies
