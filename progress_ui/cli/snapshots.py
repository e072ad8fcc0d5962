"""What the watcher shows, checked and made safe, from either source.

The progress cache and an NDJSON server both hand over a snapshot as plain data
(``SessionSnapshot``); a server may be another version of this package, or not
this package at all. :func:`read_snapshot` turns that data into a
:class:`Watched`: every status one of ``ReportedStatus`` (anything else is
refused), every number finite and bounded, every text passed through
:func:`~progress_ui.cli.sanitize.safe_text`. Nothing downstream sees the raw data.

Memory stays bounded whatever arrives: a :class:`TaskTracker` keeps the first
:data:`MAX_TASKS` task ids it sees; tasks beyond them are counted in the tally
(and the overall percent is the server's) but not kept or drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from progress_ui.cli.sanitize import safe_text
from progress_ui.core.status import ReportedStatus

#: The most task ids one watch keeps and draws (a session rarely has 100).
MAX_TASKS = 1000
#: Longest task id kept (ids are at most 64 characters in this package).
MAX_TASK_ID = 128
#: Longest texts shown, in characters.
NAME_LIMIT = 200
MESSAGE_LIMIT = 500
STEP_NAME_LIMIT = 80
SESSION_ID_LIMIT = 64


class BadSnapshot(ValueError):
    """The data is not a progress snapshot; the message is terminal-safe."""


@dataclass(frozen=True, slots=True)
class WatchedTask:
    name: str
    status: ReportedStatus
    percent: int
    message: str
    current: float | None
    total: float | None
    step: int | None
    steps: int | None
    step_name: str


@dataclass(frozen=True, slots=True)
class Watched:
    """One snapshot, as shown: the tracked tasks, and counts over all of them."""

    session_id: str
    status: ReportedStatus
    overall_percent: int
    expired: bool
    #: The tracked tasks in this snapshot, by task id, in the order sent.
    tasks: Mapping[str, WatchedTask]
    #: How many tasks of this snapshot are in each status, tracked or not.
    counts: Mapping[ReportedStatus, int]
    #: Tasks of this snapshot beyond the tracker's cap (counted, not kept).
    untracked: int

    @property
    def task_count(self) -> int:
        return sum(self.counts.values())

    @property
    def settled(self) -> bool:
        """``core.snapshot.is_settled`` over every task, tracked or not: expired,
        or none running and the session complete, failed or cancelled."""
        if self.expired:
            return True
        return not self.counts.get(ReportedStatus.RUNNING) and self.status.is_final


class TaskTracker:
    """The task ids one watch keeps: the first :data:`MAX_TASKS` it sees, for
    the whole watch (across reconnections), so displays keep state for those only."""

    def __init__(self, limit: int = MAX_TASKS) -> None:
        self.limit = limit
        self._ids: set[str] = set()

    def track(self, task_id: str) -> bool:
        """True when ``task_id`` is kept (already, or now while there is room)."""
        if task_id in self._ids:
            return True
        if len(self._ids) >= self.limit:
            return False
        self._ids.add(task_id)
        return True

    def __len__(self) -> int:
        return len(self._ids)


def status_of(value: object) -> ReportedStatus:
    if isinstance(value, str):
        try:
            return ReportedStatus(value)
        except ValueError:
            pass
    # Only text is quoted: str() of a deeply nested list could itself recurse too deep.
    shown = f"'{safe_text(value, 40)}'" if isinstance(value, str) else f"(a {type(value).__name__})"
    raise BadSnapshot(f"an unknown status {shown}")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= 10**15 else None


def _percent(value: object) -> int:
    n = _number(value)
    return 0 if n is None else int(max(0.0, min(100.0, n)))


def _text(value: object, limit: int, default: str = "") -> str:
    """Text fields: a string or a number, as sent; nothing else (a list or an
    object in a text field is a malformed snapshot)."""
    if value is None:
        return safe_text(default, limit)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return safe_text(value, limit)
    raise BadSnapshot("a text field that is not text")


def _task(task_id: str, raw: dict[object, object], status: ReportedStatus) -> WatchedTask:
    return WatchedTask(
        name=_text(raw.get("name"), NAME_LIMIT, default=task_id),
        status=status,
        percent=_percent(raw.get("percent")),
        message=_text(raw.get("message"), MESSAGE_LIMIT),
        current=_number(raw.get("current")),
        total=_number(raw.get("total")),
        step=_count(raw.get("step")),
        steps=_count(raw.get("steps")),
        step_name=_text(raw.get("step_name"), STEP_NAME_LIMIT),
    )


def read_snapshot(value: object, tracker: TaskTracker) -> Watched:
    """``value`` (a decoded JSON line, or a snapshot from the cache) as a
    :class:`Watched`; :class:`BadSnapshot` when it is not a progress snapshot."""
    if not isinstance(value, dict) or not isinstance(value.get("tasks"), dict):
        raise BadSnapshot("something that is not a progress snapshot")
    tasks: dict[str, WatchedTask] = {}
    counts: dict[ReportedStatus, int] = {}
    untracked = 0
    for raw_id, raw in value["tasks"].items():
        # Every task's status is checked and counted; the tracked tasks are kept.
        if not isinstance(raw, dict):
            raise BadSnapshot("a task that is not an object")
        status = status_of(raw.get("status"))
        counts[status] = counts.get(status, 0) + 1
        task_id = str(raw_id)[:MAX_TASK_ID]
        if tracker.track(task_id):
            tasks[task_id] = _task(task_id, raw, status)
        else:
            untracked += 1
    return Watched(
        session_id=_text(value.get("session_id"), SESSION_ID_LIMIT),
        status=status_of(value.get("status")),
        overall_percent=_percent(value.get("overall_percent")),
        expired=value.get("expired", False) is True,
        tasks=tasks,
        counts=counts,
        untracked=untracked,
    )
