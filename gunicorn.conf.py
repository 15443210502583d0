"""Gunicorn settings for Jobwarden (read from the project directory, or with -c gunicorn.conf.py).

The health monitor runs once per server, in the master, not once per worker:
`when_ready` builds one app in the master, and create_app starts the monitor
there (unless JOBWARDEN_MONITOR=off); `post_fork` tells each forked worker
that the master runs it. Without this file every worker would run its own
monitor: still correct — on PostgreSQL an advisory lock lets one pass run at a
time, and every change is a conditional transition — but wasteful.
"""


def when_ready(server):
    from webapp import create_app

    server.jobwarden_app = create_app()


def post_fork(server, worker):
    from webapp import monitor

    monitor.after_fork()
