"""Flask's signed-cookie sessions, opened without work for a request that sends no cookie.

Flask opens the session of every request as it begins: it builds the signing serializer
afresh (an itsdangerous serializer and its signer) and parses the Cookie header, 20-35 µs
before any view runs, though a request without a session cookie gets an empty session
whatever the key. Workers, scripts and the CLI send no cookies, and they make most requests
(every claim and report). So a request without a Cookie header gets its empty session at
once; one that sends cookies is opened by Flask's own code, as before. Saving a session is
Flask's own code in both cases.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class CookieSessions(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()  # what Flask's own opening gives a request with no cookie
        return super().open_session(app, request)
