"""The live-copy runs' command (benchmarks/live_copy.py): holds an exclusive lock on its
job's file while it works and records every moment it finds the lock already held — a
second live copy of the same job. It ignores SIGTERM, so only SIGKILL (the kill grace's
end, the supervisor's lease) stops it: a stopping copy lives as long as it can.

    python flock_job.py DIRECTORY KEY SECONDS
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time


def main(directory: str, key: str, seconds: float) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    lock = os.open(os.path.join(directory, f"{key}.lock"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        overlaps = os.open(os.path.join(directory, "overlaps"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(overlaps, f"{key} {time.time():.3f}\n".encode())  # one O_APPEND write: never interleaved
        os.close(overlaps)
        fcntl.flock(lock, fcntl.LOCK_EX)
    runs = os.open(os.path.join(directory, "runs"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(runs, f"{key}\n".encode())
    os.close(runs)
    time.sleep(seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
