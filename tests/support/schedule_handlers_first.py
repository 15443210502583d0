"""A handlers module declaring tests/support/schedule_handlers.py's first set of schedules."""

from tests.support.schedule_handlers import first as registry

__all__ = ["registry"]
