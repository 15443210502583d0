"""The dashboard's /schedules page (filled in below)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("schedules", __name__)
