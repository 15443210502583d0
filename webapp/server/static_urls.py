"""Content-hashed static URLs: `url_for('static', …)` (and each vendor blueprint's) gets
`?v=<digest of the file>`, and such a request is cached for a year, so a browser asks
again only when the file changed. Unversioned requests keep Flask's revalidation."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, request

YEAR_S = 365 * 24 * 3600


@lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def is_static(endpoint: str) -> bool:
    """The app's static route or a vendor blueprint's."""
    return endpoint == "static" or endpoint.endswith(".static")


def static_folder(app: Flask, endpoint: str) -> str | None:
    if endpoint == "static":
        return app.static_folder
    blueprint = app.blueprints.get(endpoint.rsplit(".", 1)[0])
    return blueprint.static_folder if blueprint is not None else None


def _add_version(endpoint: str, values: dict[str, Any]) -> None:
    if not is_static(endpoint):
        return
    folder = static_folder(current_app, endpoint)
    filename = values.get("filename")
    if folder is None or not filename or "v" in values:
        return
    path = Path(folder) / filename
    try:
        values["v"] = _digest(str(path), path.stat().st_mtime_ns)
    except OSError:
        return  # a missing file: the URL stays as asked, and answers 404


def _cache_versioned(response: Response) -> Response:
    endpoint = request.endpoint or ""
    if is_static(endpoint) and request.args.get("v") and response.status_code == 200:
        response.cache_control.public = True
        response.cache_control.max_age = YEAR_S
        response.cache_control.immutable = True
        response.cache_control.no_cache = None
    return response


def init_app(app: Flask) -> None:
    app.url_defaults(_add_version)
    app.after_request(_cache_versioned)
