"""Sizes and caps shared by the server, the worker and the dashboard, defined once."""

from __future__ import annotations

# The last bytes of a process's output the worker keeps and the store holds.
OUTPUT_TAIL_BYTES = 64 * 1024
# Counts per status stop here (shown as "10,000+"), so a huge table stays cheap to count.
COUNT_CAP = 10_000
# An operator's reason for an action, as the event timeline keeps it.
MAX_REASON_CHARS = 2000
# A command job's argv as the worker reports it for the job page: the worker clips
# to these (marking what it cut), the server refuses more.
ARGV_MAX_ITEMS = 256
ARGV_ITEM_MAX_CHARS = 4096
