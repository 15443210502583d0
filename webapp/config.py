"""Configuration read from the environment (`DATABASE_URL`, `JOBWARDEN_*`).

Every setting has a default that works on a fresh machine: an embedded SQLite
file under `instance/`, the monitor on, no operator password.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"


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


def _type_timeouts(env: dict) -> dict[str, int]:
    raw = env.get("JOBWARDEN_TYPE_TIMEOUTS")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
        return {str(k): int(v) for k, v in parsed.items()}
    except (ValueError, AttributeError, TypeError):
        raise ConfigError(
            'JOBWARDEN_TYPE_TIMEOUTS must be a JSON object of seconds, e.g. {"train": 120}'
        ) from None


def _public_url(env: dict) -> str | None:
    """The dashboard's address as users reach it, for links in notifications (no trailing slash)."""
    raw = (env.get("JOBWARDEN_PUBLIC_URL") or "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")) or len(raw.split("://", 1)[1].strip("/")) == 0:
        raise ConfigError(f"JOBWARDEN_PUBLIC_URL must be an http(s) URL such as https://jobs.example.com, got {raw!r}")
    return raw.rstrip("/")


def default_database_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'jobwarden.db'}"


def from_environment(env: dict | None = None) -> dict:
    """Build the Flask config mapping from environment variables."""
    env = dict(os.environ if env is None else env)
    return {
        "SQLALCHEMY_DATABASE_URI": env.get("DATABASE_URL") or default_database_url(),
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
        "MAX_CONTENT_LENGTH": _int(env, "JOBWARDEN_MAX_BODY_BYTES", 2 * 1024 * 1024),
        # Secure cookies by default in production: serve it over HTTPS (or set this to 0 on a trusted LAN).
        "JOBWARDEN_SECURE_COOKIES": _flag(env, "JOBWARDEN_SECURE_COOKIES", env.get("JOBWARDEN_ENV", "production") == "production"),
        "JOBWARDEN_LOGIN_RATE_LIMIT": env.get("JOBWARDEN_LOGIN_RATE_LIMIT", "5 per minute"),
        "RATELIMIT_STORAGE_URI": env.get("JOBWARDEN_RATELIMIT_STORAGE_URI", "memory://"),
        "JOBWARDEN_PUBLIC_URL": _public_url(env),
        # Webhooks (webapp/webhooks): private, loopback and link-local receivers are refused unless allowed.
        "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE": _flag(env, "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE", False),
        "JOBWARDEN_WEBHOOK_INTERVAL": _float(env, "JOBWARDEN_WEBHOOK_INTERVAL", 1.0),
        "JOBWARDEN_WEBHOOK_TIMEOUT_S": _float(env, "JOBWARDEN_WEBHOOK_TIMEOUT_S", 5.0),
        "JOBWARDEN_WEBHOOK_LEASE_S": _float(env, "JOBWARDEN_WEBHOOK_LEASE_S", 30.0),
        "JOBWARDEN_WEBHOOK_BATCH_SIZE": _int(env, "JOBWARDEN_WEBHOOK_BATCH_SIZE", 20),
        "JOBWARDEN_WEBHOOK_RETRY_FOR_S": _float(env, "JOBWARDEN_WEBHOOK_RETRY_FOR_S", 86400.0),
        "JOBWARDEN_WEBHOOK_DISABLE_AFTER_S": _float(env, "JOBWARDEN_WEBHOOK_DISABLE_AFTER_S", 86400.0),
    }
