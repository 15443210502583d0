"""Configuration read from the environment (`DATABASE_URL`, `JOBWARDEN_*`).

Every setting has a default that works on a fresh machine: an embedded SQLite
file in the data directory (see `data_dir`), the monitor on, no operator password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from .assets import SOURCE_ROOT
from .domain.limits import DEFAULT_LOG_MAX_BYTES

# CLI commands that serve the app in their own process (`dev` runs without the reloader):
# they need the internal key, and they run the monitor in-process.
SERVING_COMMANDS = frozenset({"run", "dev"})
# The longest a worker's claim may wait for a job (POST /api/internal/jobs/claim, wait_s).
MAX_CLAIM_WAIT_S = 30.0


class ConfigError(ValueError):
    """A setting in the environment cannot be used; the message names it."""


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _float(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _positive_int(env: dict, name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ConfigError(f"{name} must be 1 or more, got {value}")
    return value


def _positive_float(env: dict, name: str, default: float) -> float:
    value = _float(env, name, default)
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, got {env.get(name)!r}")
    return value


def _seconds_or_zero(env: dict, name: str, default: float) -> float:
    value = _float(env, name, default)
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{name} must be 0 or a positive number of seconds, got {env.get(name)!r}")
    return value


def _flag(env: dict, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}")


def _log_max_bytes(env: dict) -> int:
    """What each attempt keeps of its log; below 1 KiB a log would be nothing but its cut."""
    value = _int(env, "JOBWARDEN_LOG_MAX_BYTES", DEFAULT_LOG_MAX_BYTES)
    if value < 1024:
        raise ConfigError(f"JOBWARDEN_LOG_MAX_BYTES must be at least 1024 (bytes), got {value}")
    return value


def _type_timeouts(env: dict) -> dict[str, int]:
    raw = env.get("JOBWARDEN_TYPE_TIMEOUTS")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
        return {str(k): int(v) for k, v in parsed.items()}
    except (ValueError, AttributeError, TypeError):
        raise ConfigError('JOBWARDEN_TYPE_TIMEOUTS must be a JSON object of seconds, e.g. {"train": 120}') from None


def _public_url(env: dict) -> str | None:
    """The dashboard's address as users reach it, for links in notifications (no trailing slash)."""
    raw = (env.get("JOBWARDEN_PUBLIC_URL") or "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")) or len(raw.split("://", 1)[1].strip("/")) == 0:
        raise ConfigError(f"JOBWARDEN_PUBLIC_URL must be an http(s) URL such as https://jobs.example.com, got {raw!r}")
    return raw.rstrip("/")


SMTP_SCHEMES = ("smtp", "smtps")


def _smtp_url(env: dict) -> str | None:
    """JOBWARDEN_SMTP_URL: smtp://[user:password@]host:port (smtps:// for TLS from the start)."""
    raw = (env.get("JOBWARDEN_SMTP_URL") or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in SMTP_SCHEMES or not parts.hostname or port is None:
        raise ConfigError(
            f"JOBWARDEN_SMTP_URL must look like smtp://host:port or smtps://host:port, got {parts.scheme}://…"
        )
    return raw


def runs_from_source() -> bool:
    """True in a checkout (or an editable install of one), False for an installed wheel."""
    return (SOURCE_ROOT / "pyproject.toml").is_file() and (SOURCE_ROOT / "webapp").is_dir()


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the secret key and the default SQLite file live, never inside the package:
    JOBWARDEN_DATA_DIR, else `instance/` of a source checkout, else the user's data
    directory (e.g. ~/.local/share/jobwarden)."""
    env = os.environ if env is None else env
    if env.get("JOBWARDEN_DATA_DIR"):
        return Path(env["JOBWARDEN_DATA_DIR"]).expanduser().resolve()
    if runs_from_source():
        return SOURCE_ROOT / "instance"
    return Path(platformdirs.user_data_dir("jobwarden", appauthor=False))


def default_database_url(env: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{data_dir(env) / 'jobwarden.db'}"


def from_environment(env: dict | None = None) -> dict:
    """Build the Flask config mapping from environment variables."""
    env = dict(os.environ if env is None else env)
    return {
        "SQLALCHEMY_DATABASE_URI": env.get("DATABASE_URL") or default_database_url(env),
        "SECRET_KEY": env.get("JOBWARDEN_SECRET_KEY") or None,
        "JOBWARDEN_ENV": env.get("JOBWARDEN_ENV", "production"),
        "JOBWARDEN_INTERNAL_API_KEY": env.get("JOBWARDEN_INTERNAL_API_KEY") or None,
        "JOBWARDEN_ADMIN_PASSWORD": env.get("JOBWARDEN_ADMIN_PASSWORD") or None,
        "JOBWARDEN_READ_ONLY": _flag(env, "JOBWARDEN_READ_ONLY", False),
        "JOBWARDEN_MONITOR": _flag(env, "JOBWARDEN_MONITOR", True),
        "JOBWARDEN_MONITOR_INTERVAL": _float(env, "JOBWARDEN_MONITOR_INTERVAL", 10.0),
        "JOBWARDEN_HEARTBEAT_TIMEOUT": _float(env, "JOBWARDEN_HEARTBEAT_TIMEOUT", 30.0),
        "JOBWARDEN_TYPE_TIMEOUTS": _type_timeouts(env),
        "JOBWARDEN_PENDING_TIMEOUT": _float(env, "JOBWARDEN_PENDING_TIMEOUT", 3600.0),
        "JOBWARDEN_PENDING_ACTION": env.get("JOBWARDEN_PENDING_ACTION", "fail"),
        "JOBWARDEN_RETENTION_DAYS": _float(env, "JOBWARDEN_RETENTION_DAYS", 14.0),
        "JOBWARDEN_RETRY_BASE_S": _float(env, "JOBWARDEN_RETRY_BASE_S", 10.0),
        "JOBWARDEN_RETRY_MAX_S": _float(env, "JOBWARDEN_RETRY_MAX_S", 3600.0),
        "JOBWARDEN_DEFAULT_MAX_ATTEMPTS": _int(env, "JOBWARDEN_DEFAULT_MAX_ATTEMPTS", 3),
        "JOBWARDEN_SQLITE_SYNCHRONOUS": env.get("JOBWARDEN_SQLITE_SYNCHRONOUS", "FULL").upper(),
        "JOBWARDEN_SQLITE_BUSY_TIMEOUT_S": _float(env, "JOBWARDEN_SQLITE_BUSY_TIMEOUT_S", 30.0),
        # Bounds on what one request may ask of the database (webapp/query_params.py, webapp/query_time.py).
        "JOBWARDEN_QUERY_TIMEOUT_S": _positive_float(env, "JOBWARDEN_QUERY_TIMEOUT_S", 10.0),
        "JOBWARDEN_LOG_MAX_BYTES": _log_max_bytes(env),
        "JOBWARDEN_MAX_LIST_VALUES": _positive_int(env, "JOBWARDEN_MAX_LIST_VALUES", 100),
        "JOBWARDEN_MAX_JSON_DEPTH": _positive_int(env, "JOBWARDEN_MAX_JSON_DEPTH", 32),
        "MAX_CONTENT_LENGTH": _int(env, "JOBWARDEN_MAX_BODY_BYTES", 2 * 1024 * 1024),
        # Secure cookies by default in production: serve it over HTTPS (or set this to 0 on a trusted LAN).
        "JOBWARDEN_SECURE_COOKIES": _flag(
            env, "JOBWARDEN_SECURE_COOKIES", env.get("JOBWARDEN_ENV", "production") == "production"
        ),
        # A dashboard login ends this long after it began, whatever the cookie says.
        "JOBWARDEN_SESSION_LIFETIME_S": _positive_float(env, "JOBWARDEN_SESSION_LIFETIME_S", 12 * 3600.0),
        "JOBWARDEN_LOGIN_RATE_LIMIT": env.get("JOBWARDEN_LOGIN_RATE_LIMIT", "5 per minute"),
        # Wrong secrets (webapp/server/guesses.py): the password per address and overall, the internal key per address.
        "JOBWARDEN_GUESS_RATE_LIMIT": env.get("JOBWARDEN_GUESS_RATE_LIMIT", "10 per minute"),
        "JOBWARDEN_GUESS_RATE_LIMIT_TOTAL": env.get("JOBWARDEN_GUESS_RATE_LIMIT_TOTAL", "100 per minute"),
        "JOBWARDEN_KEY_GUESS_RATE_LIMIT": env.get("JOBWARDEN_KEY_GUESS_RATE_LIMIT", "20 per minute"),
        "RATELIMIT_STORAGE_URI": env.get("JOBWARDEN_RATELIMIT_STORAGE_URI", "memory://"),
        "JOBWARDEN_PUBLIC_URL": _public_url(env),
        # The Host names the server answers to (DNS rebinding): see trusted_hosts below.
        "TRUSTED_HOSTS": trusted_hosts(env.get("JOBWARDEN_TRUSTED_HOSTS"), _public_url(env)),
        # Webhooks (webapp/webhooks): private, loopback and link-local receivers are refused unless allowed.
        "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE": _flag(env, "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE", False),
        "JOBWARDEN_WEBHOOK_INTERVAL": _float(env, "JOBWARDEN_WEBHOOK_INTERVAL", 1.0),
        "JOBWARDEN_WEBHOOK_TIMEOUT_S": _float(env, "JOBWARDEN_WEBHOOK_TIMEOUT_S", 5.0),
        "JOBWARDEN_WEBHOOK_LEASE_S": _float(env, "JOBWARDEN_WEBHOOK_LEASE_S", 30.0),
        "JOBWARDEN_WEBHOOK_BATCH_SIZE": _int(env, "JOBWARDEN_WEBHOOK_BATCH_SIZE", 20),
        "JOBWARDEN_WEBHOOK_RETRY_FOR_S": _float(env, "JOBWARDEN_WEBHOOK_RETRY_FOR_S", 86400.0),
        "JOBWARDEN_WEBHOOK_DISABLE_AFTER_S": _float(env, "JOBWARDEN_WEBHOOK_DISABLE_AFTER_S", 86400.0),
        # Identity (docs/identity.md): what nobody signed in may read, OpenID Connect, personal data.
        "JOBWARDEN_ANONYMOUS_ROLE": _anonymous_role(env),
        "JOBWARDEN_OIDC_ISSUER": (env.get("JOBWARDEN_OIDC_ISSUER") or "").strip().rstrip("/") or None,
        "JOBWARDEN_OIDC_CLIENT_ID": env.get("JOBWARDEN_OIDC_CLIENT_ID") or None,
        "JOBWARDEN_OIDC_CLIENT_SECRET": env.get("JOBWARDEN_OIDC_CLIENT_SECRET") or None,
        "JOBWARDEN_OIDC_ROLE_CLAIM": env.get("JOBWARDEN_OIDC_ROLE_CLAIM") or "jobwarden_role",
        "JOBWARDEN_OIDC_NAME_CLAIM": env.get("JOBWARDEN_OIDC_NAME_CLAIM") or "preferred_username",
        "JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS": _flag(env, "JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS", False),
        # Alerts (webapp/monitor/alerting.py): mailto: endpoints go out through this server.
        "JOBWARDEN_SMTP_URL": _smtp_url(env),
        "JOBWARDEN_SMTP_FROM": env.get("JOBWARDEN_SMTP_FROM") or "jobwarden@localhost",
        # A firing alert is notified again after this long while it keeps firing.
        "JOBWARDEN_ALERT_RENOTIFY_S": _positive_float(env, "JOBWARDEN_ALERT_RENOTIFY_S", 4 * 3600.0),
        "JOBWARDEN_ALERT_RESOLVE_AFTER_S": _seconds_or_zero(env, "JOBWARDEN_ALERT_RESOLVE_AFTER_S", 300.0),
        # no_worker: a type is unserved once no worker was heard taking it for this long, so a
        # deploy that replaces the workers within it raises nothing.
        "JOBWARDEN_NO_WORKER_AFTER_S": _seconds_or_zero(env, "JOBWARDEN_NO_WORKER_AFTER_S", 60.0),
    }


def _anonymous_role(env: dict) -> str | None:
    """`viewer` (the default: anyone who reaches the dashboard reads it, as before identities)
    or `none` (reading needs a sign-in too)."""
    raw = (env.get("JOBWARDEN_ANONYMOUS_ROLE") or "viewer").strip().lower()
    if raw not in ("viewer", "none"):
        raise ConfigError(f"JOBWARDEN_ANONYMOUS_ROLE must be viewer or none, got {raw!r}")
    return None if raw == "none" else raw


# Which names the server answers to: the `Host` header is checked (Flask's TRUSTED_HOSTS).
#
# Without a password anyone who reaches the port may act, and the cross-site checks
# compare `Origin` with `Host`. A page on a name the attacker controls that resolves
# to 127.0.0.1 (DNS rebinding) sends both as its own name, so they agree, and the
# browser on the operator's machine would reach a server that trusts its loopback
# port. Answering only to the names the server is reached by closes that: by default
# the loopback names and the host of JOBWARDEN_PUBLIC_URL; JOBWARDEN_TRUSTED_HOSTS
# adds more (comma-separated; `.example.com` matches its subdomains), or `*` answers
# to any name (behind a proxy that checks it).
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
ANY_HOST = "*"


def trusted_hosts(configured: str | None, public_url: str | None) -> list[str] | None:
    """The TRUSTED_HOSTS list, or None (any name) when JOBWARDEN_TRUSTED_HOSTS is `*`."""
    names = [name.strip().lower() for name in (configured or "").split(",") if name.strip()]
    if ANY_HOST in names:
        return None
    public_host = urlsplit(public_url).hostname if public_url else None
    return list(dict.fromkeys([*LOOPBACK_NAMES, *([public_host] if public_host else []), *names]))
