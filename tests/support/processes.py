"""Looking at processes from the outside, as an operator would."""
from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, we read
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
