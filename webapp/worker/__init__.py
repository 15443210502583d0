"""The Jobwarden worker: claims jobs through the internal API and runs them.

Handler modules import what they need from here: `Registry` to register
handlers, `JobContext` for type hints, `JobFailed` to fail with a message,
`Stopped` to recognise a stop request.
"""

from .context import JobContext, JobFailed, Stopped
from .handlers import Registry

__all__ = ["JobContext", "JobFailed", "Registry", "Stopped"]
