"""Who may do what, as words: the three roles in their order, and the levels a route
can require (webapp.server.access), defined once for the API, the dashboard, the CLI
and the tests' route × role matrix.

A role includes every role below it: an admin may do what an operator may, and an
operator what a viewer may.
"""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    """A person's or a token's role; the integer order is the inclusion order."""

    VIEWER = 1  # reads
    OPERATOR = 2  # job actions: create, cancel, force-start, mark failed, resume, restart, bulk
    ADMIN = 3  # everything: webhooks, schedules, queues, users, tokens of others, the audit trail

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def named(cls, name: str) -> Role:
        """`viewer` → Role.VIEWER; ValueError naming the choices for anything else."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}: choose {', '.join(ROLE_NAMES)}") from None


ROLE_NAMES: tuple[str, ...] = tuple(role.label for role in Role)


def highest_role(values: object) -> Role | None:
    """The highest role named by an identity provider's claim (a string, or a list of
    strings; unknown names are ignored), or None when it names none."""
    names = [values] if isinstance(values, str) else values if isinstance(values, list) else []
    known = [
        Role[name.strip().upper()]
        for name in names
        if isinstance(name, str) and name.strip().upper() in Role.__members__
    ]
    return max(known, default=None)
