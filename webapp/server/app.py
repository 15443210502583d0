"""The Flask app factory: settings, database, security headers, blueprints.

Imported only by the server (see webapp/__init__.py): a worker never loads it."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from .. import config as settings
from ..assets import asset_dir
from ..store import (
    json_numbers,
    models,  # noqa: F401  (registers the tables with the metadata)
)
from ..store.extensions import db
from ..store.integrity import StoreUnreadable, check_sqlite_file, check_sqlite_owner, sqlite_path
from ..store.parsed_statements import keep_long_statements_parsed
from ..store.pings import ping_idle_connections
from ..store.write_turns import TurnConnection
from . import access, api, audit_trail, oidc, query_time, static_gzip, static_urls
from .api.spec import JobIdConverter
from .auth import check_internal_key_configured
from .cookie_sessions import CookieSessions
from .extensions import compress, csrf, htmx, limited_where_decorated, limiter, talisman
from .listeners import listen_to_moves

log = logging.getLogger(__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings from the environment, overridden by `config`."""
    app = Flask(
        __name__,
        instance_path=str(settings.data_dir()),
        template_folder=str(asset_dir("templates")),
        static_folder=str(asset_dir("static")),
    )
    app.config.update(settings.from_environment())
    app.config.update(config or {})
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(app)
    # The browser drops a login cookie after the lifetime; webapp.server.auth refuses an older login regardless.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=app.config["JOBWARDEN_SESSION_LIFETIME_S"])

    # Refuse a corrupt or foreign store before anything is written anywhere.
    database_file = sqlite_path(app.config["SQLALCHEMY_DATABASE_URI"])
    if database_file is not None:
        check_sqlite_file(database_file, full_check=app.config.get("JOBWARDEN_SQLITE_FULL_CHECK", True))
        check_sqlite_owner(database_file)
        database_file.parent.mkdir(parents=True, exist_ok=True)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _instance_secret(app)
    app.session_interface = CookieSessions()  # a request without cookies opens none (webapp.server.cookie_sessions)

    db.init_app(app)
    listen_to_moves()
    query_time.install(db.session)
    csrf.init_app(app)
    htmx.init_app(app)
    # Every poll's answer is compressed afresh: gzip level 1 and brotli quality 1 take 0.2 ms
    # of a 60 kB jobs page where level 6 took 0.5 and quality 4 0.65, for 8 % and 20 % more bytes.
    app.config.setdefault("COMPRESS_LEVEL", 1)
    app.config.setdefault("COMPRESS_BR_LEVEL", 1)
    compress.init_app(app)
    static_urls.init_app(app)
    static_gzip.init_app(app)
    _secure_headers(app)
    limiter.init_app(app)
    limited_where_decorated(app)
    with app.app_context():
        if database_file is not None:
            event.listen(db.engine, "connect", _sqlite_pragmas(app.config))
        if db.engine.dialect.name == "postgresql":
            keep_long_statements_parsed()  # see webapp.store.parsed_statements
            if "pool_pre_ping" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]:
                ping_idle_connections(db.engine)  # pooled connections: see webapp.store.pings
        _check_reachable(app)

    check_internal_key_configured(app)
    app.url_map.converters["job_id"] = JobIdConverter
    for blueprint in _vendor_blueprints():
        app.register_blueprint(blueprint)
    from .dashboard import BLUEPRINTS as DASHBOARD_BLUEPRINTS

    for blueprint in DASHBOARD_BLUEPRINTS:
        app.register_blueprint(blueprint)
    api.register(app)
    oidc.install(app)
    app.register_blueprint(oidc.bp)
    access.install(app)
    audit_trail.install(app)
    if app.config["JOBWARDEN_MONITOR"]:
        # Once per serving process; see webapp/monitor/scheduler.py and gunicorn.conf.py.
        from ..monitor.scheduler import start_scheduler

        start_scheduler(app)
    return app


# Only the app's own scripts and styles; no frames, no plugins, forms post only here.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def _secure_headers(app: Flask) -> None:
    """CSP, frame-ancestors none, nosniff, a strict referrer policy and HttpOnly, SameSite session cookies.

    HTTPS is the reverse proxy's job, so nothing here redirects to it; cookies are
    marked Secure unless JOBWARDEN_SECURE_COOKIES=0 (the default outside production).
    """
    talisman.init_app(
        app,
        force_https=False,
        content_security_policy=CONTENT_SECURITY_POLICY,
        frame_options="DENY",
        referrer_policy="same-origin",
        session_cookie_secure=app.config["JOBWARDEN_SECURE_COOKIES"],
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
    )


# SQLAlchemy keeps each statement it compiled (with the statement: 25-95 KiB apiece) in an LRU
# of 500 that it lets grow to 750 before pruning. Every combination of the jobs list's filters,
# sort, order and cursor is a statement of its own, so a long-lived server filled it: 389
# entries, +28 MiB resident, after 784 requests of different lists. The pages, the API, the
# workers' calls and a monitor pass run about 70 statements again and again; 100 (pruned back
# to 100 at 150) keeps them all, and a list nobody asked for lately is compiled again (1-2 ms).
COMPILED_STATEMENTS_KEPT = 100


def _engine_options(app: Flask) -> dict[str, Any]:
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.setdefault("json_serializer", json_numbers.dumps)  # floats stay floats through jsonb
    options.setdefault("query_cache_size", COMPILED_STATEMENTS_KEPT)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Every writer queues for its turn (store.write_turns): SQLite's busy handler is not fair.
        options.setdefault(
            "connect_args", {"timeout": app.config["JOBWARDEN_SQLITE_BUSY_TIMEOUT_S"], "factory": TurnConnection}
        )
        # No SQLite connection outlives its use: a pooled one would be inherited by every
        # gunicorn worker the master forks, and closing it there (even by garbage
        # collection) can checkpoint or remove the WAL under the master — a corrupt file.
        options.setdefault("poolclass", NullPool)
    return options


def _sqlite_pragmas(config: dict[str, Any]):
    synchronous = config["JOBWARDEN_SQLITE_SYNCHRONOUS"]
    if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise settings.ConfigError("JOBWARDEN_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
    busy_ms = int(config["JOBWARDEN_SQLITE_BUSY_TIMEOUT_S"] * 1000)

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    return on_connect


def _check_reachable(app: Flask) -> None:
    """Fail start-up with a clear message when the database does not answer."""
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        where = db.engine.url.render_as_string(hide_password=True)
        raise StoreUnreadable(f"cannot open the database {where}: {getattr(error, 'orig', None) or error}") from None


def _instance_secret(app: Flask) -> str:
    """A signing key kept in the data directory, so sessions survive restarts and replicas on one host agree."""
    path = Path(app.instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


# The pinned npm packages the pages load (package.json): blueprint name → bundled folder.
VENDOR_PACKAGES = {"vendor": "vendor/htmx", "vendor_idiomorph": "vendor/idiomorph"}


def _vendor_blueprints() -> list[Blueprint]:
    """Serve the pinned front-end packages (node_modules in a checkout, copied into the wheel by its build)."""
    return [
        Blueprint(name, __name__, static_folder=str(asset_dir(folder)), static_url_path=f"/static/{folder}")
        for name, folder in VENDOR_PACKAGES.items()
    ]
