"""The schedule vocabulary, free of imports so the CLI can offer it without loading the store."""

from __future__ import annotations

MISFIRE_POLICIES = ("skip", "run_once", "all")
OVERLAP_POLICIES = ("allow", "skip", "wait")
DEFAULT_MISFIRE = "run_once"
DEFAULT_OVERLAP = "allow"
