"""What the per-command supervisor costs, and how soon a SIGKILLed worker's
commands are gone.

- start-up: N commands (`true`) run through `GroupProcess` (supervisor + command)
  and through a bare `subprocess.run`, per command;
- containment: R times, a process standing in for the worker (it runs a
  `GroupProcess` exactly as the worker does) starts a command that ignores
  SIGTERM and starts a grandchild that ignores it too; the stand-in gets SIGKILL
  and /proc is polled until no process of the command is left. The worker's own
  bound is its heartbeat interval + 2 s (tests/test_worker_containment.py proves
  it with a real `jobwarden worker` and server).

    .venv/bin/python benchmarks/containment.py [--commands 50] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._support import marked  # noqa: E402
from webapp.worker.process import GroupProcess, OutputTail  # noqa: E402

STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)', sys.argv[1]])\n"
    "time.sleep(600)\n"
)
STAND_IN = (
    "import sys, time\n"
    "from webapp.worker.process import GroupProcess, OutputTail\n"
    "GroupProcess(sys.argv[1:], output=OutputTail(), kill_grace=10).start()\n"
    "print('started', flush=True)\n"
    "time.sleep(600)\n"
)


def per_command_ms(commands: int) -> tuple[float, float]:
    began = time.perf_counter()
    for _ in range(commands):
        process = GroupProcess(["true"], output=OutputTail())
        process.start()
        assert process.wait() == 0
    supervised = (time.perf_counter() - began) / commands * 1000
    began = time.perf_counter()
    for _ in range(commands):
        subprocess.run(["true"], check=True)
    bare = (time.perf_counter() - began) / commands * 1000
    return supervised, bare


def seconds_to_gone_after_sigkill() -> float:
    marker = f"jw-containment-{uuid.uuid4().hex}"
    stand_in = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, sys.executable, "-c", STUBBORN, marker],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert stand_in.stdout is not None and stand_in.stdout.readline() == b"started\n"
    deadline = time.monotonic() + 30
    while len(marked(marker)) < 4:  # the stand-in, supervisor, command, grandchild
        assert time.monotonic() < deadline, "the command never started its grandchild"
        time.sleep(0.01)
    stand_in.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    stand_in.wait()
    while marked(marker):
        assert time.monotonic() - killed < 30, f"processes outlived the worker: {marked(marker)}"
        time.sleep(0.01)
    return time.monotonic() - killed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    supervised, bare = per_command_ms(args.commands)
    print(
        f"start-up per command: {supervised:.1f} ms supervised, {bare:.1f} ms bare "
        f"(+{supervised - bare:.1f} ms), over {args.commands} commands"
    )
    gone = [seconds_to_gone_after_sigkill() for _ in range(args.rounds)]
    print(
        f"SIGKILL of the worker → every process of its command gone (command and grandchild ignore SIGTERM): "
        f"median {statistics.median(gone):.2f} s, max {max(gone):.2f} s over {args.rounds} rounds"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
