"""The web layer's Flask extensions, created once here and bound to the app in `create_app`."""

from flask import Flask
from flask_compress import Compress
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from .security_headers import Talisman

csrf = CSRFProtect()
htmx = HTMX()
compress = Compress()  # gzip (or br/zstd when asked) for pages, regions and JSON
talisman = Talisman()  # flask-talisman, its headers made once (webapp.server.security_headers)
# Only the routes that ask for a limit get one (the operator login).
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def limited_where_decorated(app: Flask) -> None:
    """Drop flask-limiter's check before every request: it looks for default and blueprint
    limits, and there are none (`default_limits=[]`), but resolving that took 0.35 ms of every
    request (a job's create before its statement, a worker's claim). A decorated route (the
    login's POST) checks its limit itself, in its decorator. flask-limiter has no setting for
    this: a version that registers its check otherwise keeps it (slower, never unlimited);
    tests/test_security.py says so."""
    check = getattr(limiter, "_check_request_limit", None)
    registered = app.before_request_funcs.get(None, [])
    if check in registered:
        registered.remove(check)
