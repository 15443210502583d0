"""One transaction per command: what every job command here runs inside."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..extensions import db


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit what the block did, or roll all of it back if it raised."""
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
