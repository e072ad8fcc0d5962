"""The one serialised shape of a session, shared by every transport
(``to_dict()``, NDJSON, SSE fragments, JSON polling, HTML rendering)."""

from __future__ import annotations

import json
from typing import NotRequired, TypedDict

from progress_ui.conf import ProgressSettings
from progress_ui.core.estimate import estimate
from progress_ui.core.records import TaskRecord, aggregate_status, new_record, reading_at
from progress_ui.core.status import ProgressStatus, ReportedStatus


class TaskSnapshot(TypedDict):
    name: str
    #: A ``ReportedStatus`` value (COMPLETING reads as ``running``).
    status: str
    percent: int
    message: str
    #: Measured progress, when the task reports it; else None.
    current: float | None
    total: float | None
    #: True while the percent comes from the easing curve rather than measurement.
    simulated: bool
    #: Share of this task in ``overall_percent`` (1.0 each unless weights were given).
    weight: float
    #: Sub-steps the task reports ("step 3 of 12: invoices.csv"), or None / "".
    step: int | None
    steps: int | None
    step_name: str
    #: When the task started and ended (seconds since the epoch), for elapsed time.
    started_at: float | None
    finished_at: float | None
    #: Measured items per second, and seconds left, over a trailing window; None
    #: while that would be noise (too few samples, a stall, no total).
    rate: float | None
    eta: float | None
    #: No progress for much longer than usual.
    stalled: bool
    #: A link the completed task hands the page (``complete(result_url=...)``).
    result_url: NotRequired[str]
    result_label: NotRequired[str]


class SessionSnapshot(TypedDict):
    session_id: str
    status: str
    overall_percent: int
    tasks: dict[str, TaskSnapshot]
    #: True when the session expired or vanished from the cache.
    expired: bool


def build_snapshot(
    session_id: str,
    names: dict[str, str],
    records: dict[str, TaskRecord],
    now: float,
    conf: ProgressSettings,
    weights: dict[str, float] | None = None,
) -> SessionSnapshot:
    """The snapshot at ``now``. ``overall_percent`` is the mean of the tasks'
    percents, weighted by ``weights`` (task id -> weight; 1 when absent)."""
    tasks: dict[str, TaskSnapshot] = {}
    statuses: list[ProgressStatus] = []
    total_percent = 0.0
    total_weight = 0.0
    for task_id, name in names.items():
        record = records.get(task_id) or new_record()
        reading = reading_at(record, now, conf)
        statuses.append(reading.status)
        weight = (weights or {}).get(task_id, 1.0)
        total_percent += weight * reading.percent
        total_weight += weight
        tasks[task_id] = TaskSnapshot(
            name=name,
            status=reading.status.reported.value,
            # floor, so 99.6 never shows as a finished-looking 100
            percent=int(reading.percent),
            message=record["message"],
            current=record["current"],
            total=record["total"],
            simulated=reading.simulated,
            weight=weight,
            step=record.get("step"),
            steps=record.get("steps"),
            step_name=record.get("step_name", ""),
            started_at=record["started_at"],
            finished_at=record["finished_at"],
            **_timing(record, reading.status, now),
            **_result(record),
        )
    overall = int(total_percent / total_weight) if total_weight else 0
    return SessionSnapshot(
        session_id=session_id,
        status=aggregate_status(statuses).reported.value,
        overall_percent=overall,
        tasks=tasks,
        expired=False,
    )


class _Result(TypedDict, total=False):
    result_url: str
    result_label: str


def _result(record: TaskRecord) -> _Result:
    """The link a completed task hands the page, when it has one."""
    if "result_url" not in record:
        return _Result()
    return _Result(result_url=record["result_url"], result_label=record.get("result_label", ""))


class _Timing(TypedDict):
    rate: float | None
    eta: float | None
    stalled: bool


def _timing(record: TaskRecord, status: ProgressStatus, now: float) -> _Timing:
    """Rate, time left and stall flag of a running task with counts. Rounded, so
    a snapshot only changes (and streams only send) when the estimate does."""
    samples = record.get("samples")
    if status is not ProgressStatus.RUNNING or not samples:
        return _Timing(rate=None, eta=None, stalled=False)
    found = estimate(samples, record["total"], now)
    rate = float(f"{found.rate:.2g}") if found.rate is not None else None
    return _Timing(rate=rate, eta=_round_eta(found.eta), stalled=found.stalled)


def _round_eta(eta: float | None) -> float | None:
    if eta is None:
        return None
    step = 5.0 if eta < 60 else 30.0 if eta < 600 else 60.0
    return float(max(step, round(eta / step) * step))


def expired_snapshot(session_id: str, names: dict[str, str]) -> SessionSnapshot:
    """The final snapshot of a session that is gone from the cache."""
    return SessionSnapshot(
        session_id=session_id,
        status=ReportedStatus.ERROR.value,
        overall_percent=0,
        tasks={
            t: TaskSnapshot(
                name=n,
                status=ReportedStatus.ERROR.value,
                percent=0,
                message="",
                current=None,
                total=None,
                simulated=False,
                weight=1.0,
                step=None,
                steps=None,
                step_name="",
                started_at=None,
                finished_at=None,
                rate=None,
                eta=None,
                stalled=False,
            )
            for t, n in names.items()
        },
        expired=True,
    )


def is_settled(snap: SessionSnapshot) -> bool:
    """True when nothing more will change without new work, so a stream of the
    session can end: the session expired, or no task is running and the session
    is complete or has an error.

    A failed task does not settle the session while others still run (their bars
    would freeze mid-way); pending tasks after a failure may never start, so they
    do not keep it open."""
    if snap["expired"]:
        return True
    if any(t["status"] == ReportedStatus.RUNNING for t in snap["tasks"].values()):
        return False
    return ReportedStatus(snap["status"]).is_final


def has_ended(snap: SessionSnapshot) -> bool:
    """Where ``ProgressSession.stream()`` ends: every task complete, or any task
    failed or cancelled (or the session expired)."""
    if snap["expired"] or snap["status"] == ReportedStatus.COMPLETE:
        return True
    ended = (ReportedStatus.ERROR, ReportedStatus.CANCELLED)
    return any(t["status"] in ended for t in snap["tasks"].values())


def to_json(snap: SessionSnapshot) -> str:
    """The snapshot as compact JSON text: the payload of NDJSON lines and
    JSON answers."""
    return json.dumps(snap, separators=(",", ":"), sort_keys=True)
