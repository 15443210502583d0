"""The chaos run's handler: each attempt appends `job id,attempt` to a ledger file
(JOBWARDEN_CHAOS_LEDGER) before it works, so the ledger says what really ran; the
work is an external command that leaves a grandchild (`sleep 600`) behind. Their
environment names the ledger and the worker, so the run can count what outlives a
worker."""

from __future__ import annotations

import os

from webapp.worker import JobContext, JobFailed, Registry

registry = Registry()


@registry.handler("chaos.ledger")
def append_to_ledger(ctx: JobContext) -> dict:
    line = f"{ctx.job_id},{ctx.attempt}\n".encode()
    descriptor = os.open(os.environ["JOBWARDEN_CHAOS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)  # one small O_APPEND write: lines from many processes never interleave
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    seconds = float((ctx.payload or {}).get("seconds", 0.2))
    code = ctx.run(["sh", "-c", f"sleep 600 & sleep {seconds}"])
    if code != 0:
        raise JobFailed(f"sleep exited with code {code}")
    return {"attempt": ctx.attempt}
