"""What is stored per task, and how a stored record reads at a given moment.

A record is a plain dict (safe for every cache serializer). Reading it is a pure
function of the record and ``now``: the simulated and completing percents are
derived from timestamps, never written by a timer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NotRequired, TypedDict

from progress_ui.conf import ProgressSettings
from progress_ui.core.simulation import completing_percent, real_percent, simulated_percent
from progress_ui.core.status import ProgressStatus


class TaskRecord(TypedDict):
    status: str
    started_at: float | None
    finished_at: float | None
    #: Displayed percent when the record was written; the display never drops below it.
    floor: float
    current: float | None
    total: float | None
    #: Percent reported directly with ``update(percent=...)``.
    percent: float | None
    message: str
    #: ``liveness.process_token()`` of the process running the task, if known.
    runner: NotRequired[str | None]
    #: Sub-steps: "step 3 of 12: invoices.csv" (``update(step=, steps=, step_name=)``).
    step: NotRequired[int | None]
    steps: NotRequired[int | None]
    step_name: NotRequired[str]
    #: ``[t, current]`` samples kept by ``estimate.add_sample`` for rate and time left.
    samples: NotRequired[list[list[float]]]
    #: A link the completed task hands the page (``complete(result_url=...)``),
    #: and its text.
    result_url: NotRequired[str]
    result_label: NotRequired[str]


def new_record() -> TaskRecord:
    return TaskRecord(
        status=ProgressStatus.PENDING.value,
        started_at=None,
        finished_at=None,
        floor=0.0,
        current=None,
        total=None,
        percent=None,
        message="",
        runner=None,
    )


#: The most a task that is not COMPLETE may show.
_BELOW_100 = 99.99


@dataclass(frozen=True)
class TaskReading:
    status: ProgressStatus
    percent: float
    #: True when the percent is the easing curve, not measured progress.
    simulated: bool


def measured_percent(record: TaskRecord) -> float | None:
    if record["percent"] is not None:
        return max(0.0, min(100.0, record["percent"]))
    return real_percent(record["current"], record["total"])


def reading_at(record: TaskRecord, now: float, conf: ProgressSettings) -> TaskReading:
    """The task's status and displayed percent at ``now``."""
    status = ProgressStatus(record["status"])
    if status is ProgressStatus.PENDING:
        return TaskReading(status, 0.0, simulated=False)
    if status is ProgressStatus.COMPLETE:
        return TaskReading(status, 100.0, simulated=False)
    if status in (ProgressStatus.ERROR, ProgressStatus.CANCELLED):
        return TaskReading(status, record["floor"], simulated=False)
    if status is ProgressStatus.COMPLETING:
        elapsed = now - (record["finished_at"] or now)
        if elapsed >= conf.COMPLETING_DURATION:
            return TaskReading(ProgressStatus.COMPLETE, 100.0, simulated=False)
        pct = completing_percent(record["floor"], elapsed, duration=conf.COMPLETING_DURATION)
        # Only COMPLETE shows 100: the last microseconds of the curve round to it.
        return TaskReading(status, min(pct, _BELOW_100), simulated=False)
    # RUNNING
    measured = measured_percent(record)
    if measured is not None:
        return TaskReading(status, min(conf.RUNNING_CAP, max(record["floor"], measured)), False)
    elapsed = now - (record["started_at"] or now)
    sim = simulated_percent(elapsed, half_life=conf.SIMULATION_HALF_LIFE, cap=conf.SIMULATION_CAP)
    return TaskReading(status, max(record["floor"], sim), simulated=True)


def aggregate_status(statuses: list[ProgressStatus]) -> ProgressStatus:
    """ERROR > CANCELLED > COMPLETE (all tasks) > RUNNING > PENDING.

    A session with some tasks finished and others not yet started reads as
    RUNNING: between two sequential steps the work is still under way.
    """
    if any(s is ProgressStatus.ERROR for s in statuses):
        return ProgressStatus.ERROR
    if any(s is ProgressStatus.CANCELLED for s in statuses):
        return ProgressStatus.CANCELLED
    if statuses and all(s is ProgressStatus.COMPLETE for s in statuses):
        return ProgressStatus.COMPLETE
    if any(s is not ProgressStatus.PENDING for s in statuses):
        return ProgressStatus.RUNNING
    return ProgressStatus.PENDING
