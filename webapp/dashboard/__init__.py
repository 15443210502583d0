"""The server-rendered dashboard: jobs table, job page with its recovery card, health page."""

from .views import bp

__all__ = ["bp"]
