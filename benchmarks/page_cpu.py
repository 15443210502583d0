"""CPU time per request of the jobs pages, in-process, of the code in the working directory.

Wall-clock page times on a machine shared with other work mostly measure the others:
the CPU time this thread spends on one request (routing, the sign-in check, queries
from the client's side, rendering, compression) barely moves with the load. Run it
from two checkouts (say this one and a worktree of main) against the same store,
alternating, for a ratio measured in the same run:

    for round in 1 2 3; do for dir in $PWD ../main; do
      (cd $dir && /path/to/jobwarden/.venv/bin/python /path/to/jobwarden/benchmarks/page_cpu.py --size 1000000)
    done; done

The store is the one `benchmarks/dashboard.py --keep` built and kept, `<--database-prefix>_<--size>`
on --postgres-url; the Flask test client sends each page with `Accept-Encoding: gzip`; it
prints the min and p50 of --requests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.getcwd())  # the checkout measured is the working directory, not this file's

from sqlalchemy import make_url  # noqa: E402

from benchmarks._support import DEFAULT_POSTGRES, add_database_prefix_option  # noqa: E402
from webapp import create_app  # noqa: E402

HTMX = {"HX-Request": "true"}
PAGES = {
    "/jobs page": ("/jobs", {}),
    "/jobs page ?status=failed": ("/jobs?status=failed", {}),
    "poll": ("/jobs", HTMX),
    "poll ?status=failed": ("/jobs?status=failed", HTMX),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="the server of the kept store")
    parser.add_argument("--size", type=int, default=1_000_000, help="which kept store: its number of jobs")
    add_database_prefix_option(parser)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warm-up", type=int, default=10)
    args = parser.parse_args()
    store = make_url(args.postgres_url).set(database=f"{args.database_prefix}_{args.size}")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": store.render_as_string(hide_password=False),
            "JOBWARDEN_MONITOR": False,
            "JOBWARDEN_INTERNAL_API_KEY": "benchmark-internal-key",
            "SECRET_KEY": "benchmark",
        }
    )
    client = app.test_client()
    print(f"{os.getcwd()}: CPU ms per request (this thread), {args.requests} requests", flush=True)
    for name, (path, headers) in PAGES.items():
        headers = {**headers, "Accept-Encoding": "gzip"}
        for _ in range(args.warm_up):
            assert client.get(path, headers=headers).status_code == 200
        spent = []
        for _ in range(args.requests):
            clock = time.thread_time()
            client.get(path, headers=headers)
            spent.append((time.thread_time() - clock) * 1000)
        print(f"  {name:<28} min {min(spent):5.2f}  p50 {statistics.median(spent):5.2f}", flush=True)


if __name__ == "__main__":
    main()
