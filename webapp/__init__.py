"""Jobwarden: a job store, worker API and dashboard that keeps every job's true state visible.

Importing the package loads nothing else: `webapp.worker` and `jobwarden worker`
run without Flask or SQLAlchemy. `create_app` (webapp.server.app) is imported on first
use, so `from webapp import create_app` and `gunicorn 'webapp:create_app()'` work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
