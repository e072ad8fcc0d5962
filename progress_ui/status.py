"""Task and session states."""

from __future__ import annotations

from enum import StrEnum


class ProgressStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETING = "completing"
    COMPLETE = "complete"
    ERROR = "error"

    @property
    def is_finished(self) -> bool:
        return self in (ProgressStatus.COMPLETE, ProgressStatus.ERROR)

    @property
    def public(self) -> str:
        """Value sent to clients: COMPLETING is reported as ``running`` (per the spec)."""
        return "running" if self is ProgressStatus.COMPLETING else self.value

    def __str__(self) -> str:
        return self.value
