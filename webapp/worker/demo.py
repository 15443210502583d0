"""Demo handlers, for trying Jobwarden out and for the tests:

    jobwarden worker --server http://127.0.0.1:5000 --handlers webapp.worker.demo

- ``demo.noop``: does nothing, returns ``{"ok": true}``.
- ``demo.sleep``: ``{"seconds": N}``, reports progress as it goes.
- ``demo.pipeline``: steps download → transcode → upload,
  ``{"seconds_per_step": N, "fail_step": optional step name}``.
- ``demo.flaky``: fails its first attempt, succeeds after.
- ``demo.crash``: an external command that writes to stderr and exits 1.
- ``demo.hang``: an external command that ignores SIGTERM and sleeps.
- ``demo.command_sleep``: an external command sleeping ``{"seconds": N}``.
"""
from __future__ import annotations

import sys

from .context import JobContext
from .handlers import Registry

registry = Registry()

PIPELINE_STEPS = ("download", "transcode", "upload")


@registry.handler("demo.noop")
def noop(ctx: JobContext) -> dict:
    return {"ok": True}


@registry.handler("demo.sleep")
def sleep(ctx: JobContext) -> dict:
    seconds = float((ctx.payload or {}).get("seconds", 5))
    ticks = max(1, int(seconds * 10))
    ctx.stage("sleeping")
    for tick in range(ticks):
        ctx.sleep(seconds / ticks)
        ctx.progress(100 * (tick + 1) / ticks)
    return {"slept": seconds}


@registry.handler("demo.pipeline")
def pipeline(ctx: JobContext) -> dict:
    payload = ctx.payload or {}
    seconds = float(payload.get("seconds_per_step", 1))
    fail_step = payload.get("fail_step")
    for index, name in enumerate(PIPELINE_STEPS):
        with ctx.step(name):
            ctx.stage(name)
            ctx.log(f"{name}: started")
            ctx.sleep(seconds)
            if name == fail_step:
                raise RuntimeError(f"{name} failed (asked to by the payload)")
            ctx.progress(100 * (index + 1) / len(PIPELINE_STEPS))
            ctx.log(f"{name}: done")
    return {"steps": list(PIPELINE_STEPS)}


@registry.handler("demo.flaky")
def flaky(ctx: JobContext) -> dict:
    if ctx.attempt == 1:
        raise RuntimeError("flaky: the first attempt always fails")
    return {"attempt": ctx.attempt}


registry.command(
    "demo.crash",
    [sys.executable, "-c", "import sys; print('starting'); sys.stderr.write('crash: something broke\\n'); sys.exit(1)"],
)

registry.command(
    "demo.hang",
    [sys.executable, "-c",
     "import os, signal, time\n"
     "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
     "print('hanging, ignoring SIGTERM; pid', os.getpid(), flush=True)\n"
     "while True: time.sleep(1)\n"],
)

registry.command(
    "demo.command_sleep",
    [sys.executable, "-c",
     "import os, sys, time; print('sleeping; pid', os.getpid(), flush=True); time.sleep(float(sys.argv[1]))",
     "{seconds}"],
)
