"""The Flask app behind the `current_app` proxy, with its type."""

from __future__ import annotations

from typing import cast

from flask import Flask, current_app
from werkzeug.local import LocalProxy


def current_flask_app() -> Flask:
    """The app object itself, for code that keeps it beyond the current context (loops, threads).

    Flask types `current_app` as a `Flask`, which hides the proxy's `_get_current_object`.
    """
    return cast("LocalProxy[Flask]", current_app)._get_current_object()
