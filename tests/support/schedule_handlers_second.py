"""A handlers module declaring tests/support/schedule_handlers.py's second set of schedules."""

from tests.support.schedule_handlers import second as registry

__all__ = ["registry"]
