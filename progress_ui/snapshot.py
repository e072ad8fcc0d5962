"""The one serialised shape of a session, shared by every transport
(``to_dict()``, NDJSON, SSE fragments, JSON polling, HTML rendering)."""

from __future__ import annotations

from typing import TypedDict

from .conf import ProgressSettings
from .records import TaskRecord, aggregate_status, new_record, read
from .status import ProgressStatus


class TaskSnapshot(TypedDict):
    name: str
    #: ``pending``, ``running``, ``complete`` or ``error`` (COMPLETING reads as running).
    status: str
    percent: int
    message: str
    #: Measured progress, when the task reports it; else None.
    current: float | None
    total: float | None
    #: True while the percent comes from the easing curve rather than measurement.
    simulated: bool


class SessionSnapshot(TypedDict):
    session_id: str
    status: str
    overall_percent: int
    tasks: dict[str, TaskSnapshot]
    #: True when the session expired or vanished from the cache.
    expired: bool


FINISHED = ("complete", "error")


def build(
    session_id: str,
    names: dict[str, str],
    records: dict[str, TaskRecord],
    now: float,
    conf: ProgressSettings,
) -> SessionSnapshot:
    tasks: dict[str, TaskSnapshot] = {}
    statuses: list[ProgressStatus] = []
    total_percent = 0.0
    for task_id, name in names.items():
        record = records.get(task_id) or new_record()
        reading = read(record, now, conf)
        statuses.append(reading.status)
        total_percent += reading.percent
        tasks[task_id] = TaskSnapshot(
            name=name,
            status=reading.status.public,
            # floor, so 99.6 never shows as a finished-looking 100
            percent=int(reading.percent),
            message=record["message"],
            current=record["current"],
            total=record["total"],
            simulated=reading.simulated,
        )
    overall = int(total_percent / len(names)) if names else 0
    return SessionSnapshot(
        session_id=session_id,
        status=aggregate_status(statuses).public,
        overall_percent=overall,
        tasks=tasks,
        expired=False,
    )


def expired(session_id: str, names: dict[str, str]) -> SessionSnapshot:
    """The final snapshot of a session that is gone from the cache."""
    return SessionSnapshot(
        session_id=session_id,
        status=ProgressStatus.ERROR.value,
        overall_percent=0,
        tasks={
            t: TaskSnapshot(
                name=n,
                status=ProgressStatus.ERROR.value,
                percent=0,
                message="",
                current=None,
                total=None,
                simulated=False,
            )
            for t, n in names.items()
        },
        expired=True,
    )


def is_finished(snap: SessionSnapshot) -> bool:
    """True when nothing more will change without new work: the session expired,
    or no task is running and the session is complete or has an error.

    A failed task does not end the session while others still run (their bars
    would freeze mid-way); pending tasks after a failure may never start, so they
    do not keep it open."""
    if snap["expired"]:
        return True
    if any(t["status"] == "running" for t in snap["tasks"].values()):
        return False
    return snap["status"] in FINISHED
