"""The benchmark's job (benchmarks/logs.py): a command writing lines at a steady pace,
to its stdout (the log) or to /dev/null (the baseline)."""

from __future__ import annotations

import sys

from webapp.worker import Registry

registry = Registry()

registry.command(
    "bench.lines",
    [
        sys.executable,
        "-c",
        "import sys, time\n"
        "lines, seconds, sink = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]\n"
        "out = open('/dev/null', 'w') if sink == 'devnull' else sys.stdout\n"
        "bursts = int(seconds * 100)\n"
        "per_burst = lines // bursts\n"
        "begun = time.monotonic()\n"
        "for burst in range(bursts):\n"
        "    for i in range(per_burst):\n"
        "        out.write('line %07d of the benchmark, about as long as a real log line\\n' % (burst * per_burst + i))\n"
        "    out.flush()\n"
        "    time.sleep(max(0.0, begun + (burst + 1) * seconds / bursts - time.monotonic()))\n",
        "{lines}",
        "{seconds}",
        "{sink}",
    ],
)
