"""Sizes and caps shared by the server, the worker and the dashboard, defined once."""

from __future__ import annotations

# The last bytes of a process's output the worker keeps and the store holds.
OUTPUT_TAIL_BYTES = 64 * 1024
# Counts per status stop here (shown as "10,000+"), so a huge table stays cheap to count.
COUNT_CAP = 10_000
# How far ahead a create may put a job's first run (`delay_s`, `run_after`): a year and a day.
MAX_DELAY_S = 366 * 24 * 3600
# An operator's reason for an action, as the event timeline keeps it.
MAX_REASON_CHARS = 2000
# A command job's argv as the worker reports it for the job page: the worker clips
# to these (marking what it cut), the server refuses more.
ARGV_MAX_ITEMS = 256
ARGV_ITEM_MAX_CHARS = 4096
# Reports in one `POST /api/internal/reports`. The batch is one transaction, and on SQLite
# every other writer waits for it: at about 2 ms of work per report on a quiet machine
# (statement building, mostly), 100 hold the write lock for about 0.2 s, where 1,000 held
# it for seconds (issue 24, item 6). The worker sends its reports in batches of this size.
MAX_REPORTS_PER_BATCH = 100
# A job's log (webapp.domain.log_lines): the most one report item carries (the server refuses
# more), the most log text of all jobs one report batch carries (so a flood never makes a batch,
# and the heartbeats in it, slow), and the most an attempt's worker holds unsent before it drops
# lines (counting them, and saying so in the log).
LOG_ITEM_MAX_BYTES = 256 * 1024
LOG_BATCH_MAX_BYTES = 512 * 1024
LOG_WORKER_BUFFER_BYTES = 1024 * 1024
# What an attempt keeps of its log unless JOBWARDEN_LOG_MAX_BYTES says otherwise.
DEFAULT_LOG_MAX_BYTES = 1024 * 1024
# On SQLite, the work one batch of reports does in its transaction: past this, the items not yet applied
# are answered DEFERRED (nothing of them written) and the worker sends them again in its next
# batch. On a loaded machine 100 reports took up to a second; with this budget a batch holds
# SQLite's write lock for about this long, and another writer waits behind a few batches at most.
REPORT_BATCH_BUDGET_S = 0.2
# ... and past this once another writer queues for its turn behind the batch (store.write_turns):
# that writer waits for this share, not the whole budget (a create is two transactions, the
# job and its audit row, and waited behind a whole budget twice). Batches are not cut short by
# each other: they queue among themselves first.
REPORT_BATCH_SHARE_S = 0.05
# The error of a report the batch left for the next one (answered with code 503).
DEFERRED = "deferred"
# Values in one request body's JSON (every number, string, array and object counts one).
# Validating, storing and answering cost per value, about 9 µs each on the loaded project
# machine, so a 2 MB body of a million tiny values took 8.7 s; at this cap the worst body
# takes about a tenth of a second (docs/reliability.md, "Hardening probes"). A bulk create of
# 1,000 jobs keeps room for about 20 values of payload each. The worker API is not counted
# (its bodies carry results; only holders of the internal key reach it).
MAX_JSON_VALUES = 25_000
