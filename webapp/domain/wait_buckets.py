"""The bounds of the queue-latency histogram (ready → claimed: from when a job could run — its
creation, or the end of its delay or of a retry's backoff, its `run_after` — until a worker
claimed it), shared by the rollups that count into it, the percentiles read back from it, and
the Prometheus gauges. A wait its own schedule asked for is not latency: counted from the
creation, a job delayed by 5 min, or retried after 5 min of backoff, read as 5 min of latency
(a p95 of 10 min on /stats from make run's own sample jobs), as a queue whose workers fall behind does.

Bucket i holds waits of at most WAIT_BOUNDS_S[i] seconds (and more than the bound before);
bucket len(WAIT_BOUNDS_S) holds longer waits; NEVER_CLAIMED counts jobs that finished
without a claim (cancelled or failed while queued), which have no wait.
"""

from __future__ import annotations

WAIT_BOUNDS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
OVERFLOW = len(WAIT_BOUNDS_S)
NEVER_CLAIMED = -1


def quantile(counts: dict[int, int], q: float) -> float | None:
    """The q-quantile of the waits counted per bucket, interpolated linearly inside its bucket
    (as Prometheus' histogram_quantile does); None with no wait counted."""
    total = sum(n for bucket, n in counts.items() if bucket != NEVER_CLAIMED)
    if not total:
        return None
    rank = q * total
    seen = 0
    for bucket in range(OVERFLOW + 1):
        n = counts.get(bucket, 0)
        if n and seen + n >= rank:
            if bucket == OVERFLOW:
                return float(WAIT_BOUNDS_S[-1])
            low = 0.0 if bucket == 0 else float(WAIT_BOUNDS_S[bucket - 1])
            high = float(WAIT_BOUNDS_S[bucket])
            return low + (high - low) * (rank - seen) / n
        seen += n
    return float(WAIT_BOUNDS_S[-1])
