"""Handlers the worker tests need beyond the demo ones (`--handlers tests.support.worker_handlers`)."""
from __future__ import annotations

import sys
import time

from webapp.worker import JobContext, Registry

registry = Registry()

# Starts a grandchild, prints both pids, sleeps: for "no grandchild survives".
registry.command("test.family", [
    sys.executable, "-c",
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print('pid', os.getpid(), flush=True)\n"
    "print('grandchild', child.pid, flush=True)\n"
    "time.sleep(120)\n",
])


@registry.handler("test.step_sleep")
def step_sleep(ctx: JobContext) -> dict:
    """One step that sleeps (cooperatively) for payload["seconds"]."""
    with ctx.step("upload"):
        ctx.log("uploading")
        ctx.sleep(float(ctx.payload["seconds"]))
    return {"uploaded": True}


@registry.handler("test.step_stage")
def step_stage(ctx: JobContext) -> dict:
    """Inside a step, sets the stage from the payload (which the server may refuse), then works on."""
    with ctx.step("publish"):
        ctx.stage(ctx.payload["stage"])
        ctx.sleep(float(ctx.payload.get("seconds", 5)))
    return {"published": True}


@registry.handler("test.stubborn")
def stubborn(ctx: JobContext) -> dict:
    """Never looks at the context while it works: stop requests go unnoticed."""
    with ctx.step("grind"):
        time.sleep(float(ctx.payload["seconds"]))
    return {"ground": True}


# The command and its grandchild both ignore SIGTERM and carry the payload's
# marker on their command lines, so a test can find every process of the job.
registry.command("test.stubborn_family", [
    sys.executable, "-c",
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)', sys.argv[1]])\n"
    "print('grandchild', child.pid, flush=True)\n"
    "time.sleep(600)\n",
    "{marker}",
])

# Exits at once, leaving a grandchild that ends a moment later: in a container
# whose PID 1 is the worker, the grandchild would become the worker's zombie.
registry.command("test.short_orphan", [
    sys.executable, "-c",
    "import subprocess, sys\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.5)', sys.argv[1]])\n",
    "{marker}",
])

# Creates the file the payload names: for "a payload never adds arguments".
registry.command("test.touch", [
    sys.executable, "-c", "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()", "{file}",
])
