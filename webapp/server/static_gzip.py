"""Static files gzipped for browsers that accept it.

flask-compress leaves Flask's file answers alone (they stream from disk), so the
stylesheet and scripts went out uncompressed. Here each file's gzip is made once
per version of the file and kept in memory. The gzipped answer's ETag becomes
weak (W/"…", as nginx does): the same file in another encoding. If-None-Match
compares weakly, so a revalidation still answers 304, and the content-hashed
URLs keep their year-long cache (webapp.server.static_urls).
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

from flask import Flask, Response, current_app, request
from werkzeug.security import safe_join

from .static_urls import is_static, static_folder

COMPRESSIBLE = frozenset({"text/css", "text/javascript", "application/javascript", "image/svg+xml", "application/json"})


@lru_cache(maxsize=64)
def _gzipped(path: str, mtime_ns: int) -> bytes:
    return gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0)


def _file_of(endpoint: str) -> str | None:
    folder = static_folder(current_app, endpoint)
    filename = (request.view_args or {}).get("filename")
    return safe_join(folder, filename) if folder and filename else None


def _compress_static(response: Response) -> Response:
    if not is_static(request.endpoint or "") or response.mimetype not in COMPRESSIBLE:
        return response
    response.vary.add("Accept-Encoding")
    if (
        response.status_code not in (200, 304)
        or "Content-Encoding" in response.headers
        or request.accept_encodings["gzip"] <= 0
    ):
        return response
    etag, _ = response.get_etag()
    if etag:
        response.set_etag(etag, weak=True)
    path = _file_of(request.endpoint or "")
    if response.status_code == 304 or path is None:
        return response
    body = _gzipped(path, os.stat(path).st_mtime_ns)
    if hasattr(response.response, "close"):
        response.response.close()  # the file Flask opened to stream
    response.direct_passthrough = False
    response.set_data(body)
    response.headers["Content-Encoding"] = "gzip"
    response.headers.pop("Accept-Ranges", None)  # byte ranges would be of the file, not of this body
    return response


def init_app(app: Flask) -> None:
    app.after_request(_compress_static)
