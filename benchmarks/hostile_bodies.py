"""Time per request of every hostile body shape (benchmarks/hostile_shapes.py) at
growing sizes up to the body limit, against a real one-process gunicorn on loopback.

Input checks must be linear: a shape whose time grows with the square of its size
shows as a jump between sizes long before the limit. Flags (and exits 1 on) any
request slower than --flag-ms (default 100 ms) at the sizes given.

    .venv/bin/python benchmarks/hostile_bodies.py
    .venv/bin/python benchmarks/hostile_bodies.py --sizes 8192,65536,2097152 --flag-ms 250
    .venv/bin/python benchmarks/hostile_bodies.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._support import add_database_prefix_option, app_config, fresh_database, running_server  # noqa: E402
from benchmarks.hostile_shapes import BODY_LIMIT, SHAPES, at_the_value_cap  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.store.extensions import db  # noqa: E402

REPEATS = 3


def time_request(port: int, body: bytes) -> tuple[int, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        started = time.perf_counter()
        connection.request("POST", "/api/jobs", body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        return answer.status, time.perf_counter() - started
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=f"8192,65536,524288,{BODY_LIMIT}", help="body sizes in bytes")
    parser.add_argument("--flag-ms", type=float, default=100.0, help="flag a request slower than this")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a throwaway database is made); default SQLite")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    flagged = []
    with (
        tempfile.TemporaryDirectory(prefix="jobwarden-hostile-") as tmp,
        fresh_database(args.database_url, args.database_prefix) as database_url,
    ):
        app = create_app(app_config(database_url))
        with app.app_context():
            db.create_all()
            db.session.remove()
        with running_server(database_url, Path(tmp) / "server.log", deployed=True, GUNICORN_WORKERS="1") as server:
            print(f"{'shape':32} " + " ".join(f"{size:>10}" for size in sizes) + "   (ms, slowest of 3; status)")
            for shape, build in SHAPES.items():
                cells = []
                for size in sizes:
                    results = [time_request(server.port, build(size)) for _ in range(REPEATS)]
                    status, slowest = results[0][0], max(took for _, took in results)
                    cells.append(f"{slowest * 1000:7.1f} {status}")
                    if slowest * 1000 > args.flag_ms:
                        flagged.append(f"{shape} at {size} bytes: {slowest * 1000:.0f} ms")
                print(f"{shape:32} " + " ".join(f"{cell:>10}" for cell in cells))
            body = at_the_value_cap()
            results = [time_request(server.port, body) for _ in range(REPEATS)]
            slowest = max(took for _, took in results)
            print(f"{'tiny numbers at the value cap':32} {slowest * 1000:7.1f} {results[0][0]} ({len(body)} bytes)")
            if slowest * 1000 > args.flag_ms:
                flagged.append(f"tiny numbers at the value cap: {slowest * 1000:.0f} ms")
    for line in flagged:
        print(f"SLOW: {line}")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
