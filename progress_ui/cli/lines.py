"""The watcher's text: a line per task, the overall line, the closing summary.

Pure functions of a :class:`~progress_ui.cli.snapshots.Watched`, whose texts are
already terminal-safe.
"""

from __future__ import annotations

from progress_ui.cli.exits import (
    EXIT_CANCELLED,
    EXIT_COMPLETE,
    EXIT_ERROR,
    EXIT_GONE,
    EXIT_TRANSPORT,
)
from progress_ui.cli.snapshots import Watched, WatchedTask
from progress_ui.core.status import ReportedStatus

#: Exit status and first word of the summary for each final session status.
ENDINGS = {
    ReportedStatus.COMPLETE: (EXIT_COMPLETE, "Complete"),
    ReportedStatus.ERROR: (EXIT_ERROR, "Failed"),
    ReportedStatus.CANCELLED: (EXIT_CANCELLED, "Cancelled"),
}
#: The tally's order, and its word for each status.
_TALLIED = {
    ReportedStatus.RUNNING: "running",
    ReportedStatus.PENDING: "pending",
    ReportedStatus.ERROR: "failed",
    ReportedStatus.CANCELLED: "cancelled",
}


def number(value: float | None) -> str:
    if value is None:
        return "?"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def counts(task: WatchedTask) -> str:
    """ "40/250" and "step 2/3 prices.csv", as far as the task reports them."""
    parts = []
    if task.current is not None:
        parts.append(
            number(task.current)
            if task.total is None
            else f"{number(task.current)}/{number(task.total)}"
        )
    if task.step is not None:
        step = f"step {task.step}" + (f"/{task.steps}" if task.steps else "")
        parts.append(f"{step} {task.step_name}".rstrip())
    return " ".join(parts)


def task_line(task: WatchedTask) -> str:
    line = f"{task.name}: {task.status} {task.percent}%"
    if extra := counts(task):
        line += f" ({extra})"
    if task.message:
        line += f" - {task.message}"
    return line


def tally(snap: Watched) -> str:
    """ "1/3 complete, 1 running, 1 pending": how many tasks are in each status
    (all of them, tracked or not)."""
    parts = [f"{snap.counts.get(ReportedStatus.COMPLETE, 0)}/{snap.task_count} complete"]
    for status, word in _TALLIED.items():
        if n := snap.counts.get(status, 0):
            parts.append(f"{n} {word}")
    return ", ".join(parts)


def hidden(snap: Watched) -> str:
    """ "1500 tasks not shown" when the snapshot has more tasks than are tracked."""
    if not snap.untracked:
        return ""
    return f"{snap.untracked} task{'s' if snap.untracked != 1 else ''} not shown"


def overall_line(snap: Watched) -> str:
    extra = f"; {note}" if (note := hidden(snap)) else ""
    return f"Overall: {snap.status} {snap.overall_percent}% ({tally(snap)}{extra})"


def outcome(last: Watched | None) -> tuple[int, str]:
    """The exit status and the one-line summary for the last snapshot seen."""
    if last is None:
        return EXIT_TRANSPORT, "Failed: no snapshot was received."
    if last.expired:
        return EXIT_GONE, "Expired: the session is gone from the cache."
    ending = ENDINGS.get(last.status)
    if not last.settled or ending is None:
        return EXIT_TRANSPORT, (
            f"Stopped before the session finished: {last.status} "
            f"{last.overall_percent}% ({tally(last)})."
        )
    code, word = ending
    summary = f"{word}: {last.overall_percent}% ({tally(last)})"
    failed = [t for t in last.tasks.values() if t.status is ReportedStatus.ERROR]
    if failed:
        summary += f"; {failed[0].name}: {failed[0].message or 'failed'}"
    return code, summary + "."
