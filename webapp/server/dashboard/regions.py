"""Page or region: one answer for the dashboard's pages that HTMX also polls."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, render_template

from ..extensions import htmx


def wants_region() -> bool:
    """An HTMX request that swaps a part of the page (not a boosted link, not a history restore)."""
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_region(page: str, region: str, **context: Any) -> Response:
    """The whole `page`, or for an HTMX request only `region`, the part it swaps.

    A boosted link and a history restore (`HX-History-Restore-Request`, sent when
    the browser's history cache misses) get the whole page. The answer varies by
    `HX-Request` (and the two headers that turn a region back into the page, and
    `HX-Target`, by which a page with two regions picks one), so no cache hands a
    region to a page load, the reverse, or one region for another.
    """
    response = make_response(render_template(region if wants_region() else page, **context))
    for header in ("HX-Request", "HX-Boosted", "HX-History-Restore-Request", "HX-Target"):
        response.vary.add(header)
    return response
