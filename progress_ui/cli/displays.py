"""The two ways a watch is drawn: plain lines on change, or live bars (``rich``).

Both take :class:`~progress_ui.cli.snapshots.Watched` snapshots, whose texts are
already terminal-safe; the live display also puts every text in a ``rich``
``Text`` (never a markup string), so brackets in a task name stay text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Protocol

from progress_ui.cli.lines import counts as task_counts
from progress_ui.cli.lines import hidden, overall_line, tally, task_line
from progress_ui.cli.snapshots import Watched, WatchedTask
from progress_ui.core.status import ReportedStatus

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.progress_bar import ProgressBar

INSTALL_HINT = 'pip install "django-progress-ui[watch]"'


class Display(Protocol):
    def show(self, snap: Watched) -> None: ...

    def close(self, last: Watched | None) -> None:
        """Draw the last state and give the terminal back (the cursor shown)."""


class PlainDisplay:
    """A line per task when it changes: at once when its status changes, else at
    most once per ``interval`` seconds (simulated percents change at every poll);
    an overall line when the overall changed, after task lines or at most once
    per ``interval``. ``close`` prints whatever changed since, so the last lines
    are the final state. State is kept for tracked tasks only (bounded)."""

    def __init__(self, write: Callable[[str], None], interval: float) -> None:
        self.write = write
        self.interval = interval
        self.printed: dict[str, WatchedTask] = {}
        self.printed_at: dict[str, float] = {}
        self.overall: str | None = None
        self.overall_at = -math.inf

    def show(self, snap: Watched, *, final: bool = False) -> None:
        now = time.monotonic()
        wrote = False
        for task_id, task in snap.tasks.items():
            before = self.printed.get(task_id)
            if before == task:
                continue
            due = now - self.printed_at.get(task_id, -math.inf) >= self.interval
            if before is None or before.status != task.status or due or final:
                self.write(task_line(task))
                self.printed[task_id], self.printed_at[task_id] = task, now
                wrote = True
        overall = overall_line(snap)
        due = now - self.overall_at >= self.interval
        if (wrote or final or due) and overall != self.overall:
            self.write(overall)
            self.overall, self.overall_at = overall, now

    def close(self, last: Watched | None) -> None:
        if last is not None and not last.expired:
            self.show(last, final=True)


STATUS_STYLES = {
    ReportedStatus.PENDING: "dim",
    ReportedStatus.RUNNING: "cyan",
    ReportedStatus.COMPLETE: "green",
    ReportedStatus.ERROR: "bold red",
    ReportedStatus.CANCELLED: "yellow",
}
#: Lines of the terminal left for the overall row and the "more tasks" row.
_RESERVED_ROWS = 3


class LiveDisplay:
    """Bars redrawn in place with ``rich`` (imported only here): as many task
    rows as the terminal has lines, a row counting the others, the overall row."""

    def __init__(self, out: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out)
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self.started = False

    def _bar(self, percent: int, status: ReportedStatus, width: int) -> ProgressBar:
        from rich.progress_bar import ProgressBar

        failed = status in (ReportedStatus.ERROR, ReportedStatus.CANCELLED)
        return ProgressBar(
            total=100,
            completed=percent,
            width=width,
            complete_style=STATUS_STYLES[status] if failed else "bar.complete",
            finished_style="green",
        )

    def _render(self, snap: Watched) -> RenderableType:
        from rich.table import Table
        from rich.text import Text

        # Fixed widths for all but the message, which takes what is left (long
        # names, counts and messages are cut, never squeeze the bar out).
        width = self.console.width
        bar_width = max(10, min(40, width // 4))
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(width=max(12, min(30, width // 5)), no_wrap=True, overflow="ellipsis")
        table.add_column(width=bar_width)  # the bar
        table.add_column(width=4, justify="right", no_wrap=True)  # percent
        table.add_column(width=9, no_wrap=True)  # status
        table.add_column(max_width=max(8, width // 4), no_wrap=True, overflow="ellipsis")
        table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)  # message

        def status_text(status: ReportedStatus) -> Text:
            return Text(str(status), style=STATUS_STYLES[status])

        room = max(1, self.console.height - _RESERVED_ROWS)
        shown = list(snap.tasks.values())[:room]
        for task in shown:
            table.add_row(
                Text(task.name),
                self._bar(task.percent, task.status, bar_width),
                Text(f"{task.percent}%"),
                status_text(task.status),
                Text(task_counts(task)),
                Text(task.message),
            )
        if more := len(snap.tasks) - len(shown) + snap.untracked:
            table.add_row(Text(f"+{more} more", style="dim"), *[Text("")] * 4, Text(hidden(snap)))
        table.add_row(
            Text("Overall", style="bold"),
            self._bar(snap.overall_percent, snap.status, bar_width),
            Text(f"{snap.overall_percent}%"),
            status_text(snap.status),
            Text(tally(snap)),
            Text("expired" if snap.expired else ""),
        )
        return table

    def show(self, snap: Watched) -> None:
        if not self.started:
            self.live.start()
            self.started = True
        self.live.update(self._render(snap), refresh=True)

    def close(self, last: Watched | None) -> None:
        if not self.started:
            return
        try:
            if last is not None:
                self.live.update(self._render(last), refresh=True)
        finally:
            self.live.stop()  # shows the cursor again
        if not self.console.is_terminal:
            self.console.line()  # rich leaves the last frame without one


def live_display(out: IO[str]) -> LiveDisplay | None:
    """A :class:`LiveDisplay`, or None when ``rich`` is not installed."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return None
    return LiveDisplay(out)
