"""The kinds of a job's timeline events (`job_events.kind`): a move of its status, a durable
step it reported, or a note (something that happened to the job without moving it: a lease
released, a cancellation confirmed or never confirmed)."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    STATUS = "status"
    STEP = "step"
    NOTE = "note"
