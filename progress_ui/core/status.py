"""The one status vocabulary: the states a task is stored in, the states that
snapshots report, and which of them are final.

Stored: PENDING -> RUNNING -> COMPLETING -> COMPLETE, or ERROR or CANCELLED
from any state before COMPLETING. Reported (``to_dict()``, NDJSON, JSON, HTML):
the same without COMPLETING, which reads as ``running``: a task is not
reported complete before its bar has eased to 100 %.
"""

from __future__ import annotations

from enum import StrEnum


class ReportedStatus(StrEnum):
    """What a snapshot says about a task or a session."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """COMPLETE, ERROR or CANCELLED."""
        return self in REPORTED_FINAL

    def __str__(self) -> str:
        return self.value


class ProgressStatus(StrEnum):
    """The state a task is stored in (and the aggregate state of a session)."""

    PENDING = "pending"
    RUNNING = "running"
    #: The work has ended; the bar animates to 100 % before reading COMPLETE.
    COMPLETING = "completing"
    COMPLETE = "complete"
    ERROR = "error"
    #: Stopped on request (``ProgressSession.cancel``); the work stops at its next step.
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """COMPLETE, ERROR or CANCELLED: the record never changes again."""
        return self in FINAL

    @property
    def work_ended(self) -> bool:
        """COMPLETING or a final state: the work is over and takes no more
        progress, though a COMPLETING bar is still animating."""
        return self in WORK_ENDED

    @property
    def reported(self) -> ReportedStatus:
        """The value snapshots carry: COMPLETING is reported as ``running``."""
        if self is ProgressStatus.COMPLETING:
            return ReportedStatus.RUNNING
        return ReportedStatus(self.value)

    def __str__(self) -> str:
        return self.value


FINAL = frozenset({ProgressStatus.COMPLETE, ProgressStatus.ERROR, ProgressStatus.CANCELLED})
WORK_ENDED = FINAL | {ProgressStatus.COMPLETING}
REPORTED_FINAL = frozenset(
    {ReportedStatus.COMPLETE, ReportedStatus.ERROR, ReportedStatus.CANCELLED}
)
