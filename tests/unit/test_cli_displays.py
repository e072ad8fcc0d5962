"""The watcher's displays: plain lines (bounded state), live bars (rich), and the
command writing both through Django's public ``OutputWrapper`` API."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import override_settings
from rich.console import Console

from progress_ui import ProgressSession
from progress_ui.cli.displays import LiveDisplay, PlainDisplay
from progress_ui.cli.snapshots import MAX_TASKS, TaskTracker, Watched, read_snapshot

EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e"


def watched(tracker: TaskTracker, status: str, ids: range, **task: object) -> Watched:
    tasks = {f"t{i}": {"status": status, **task} for i in ids}
    return read_snapshot({"status": status, "overall_percent": 5, "tasks": tasks}, tracker)


def test_plain_display_keeps_state_for_tracked_tasks_only() -> None:
    lines: list[str] = []
    display = PlainDisplay(lines.append, interval=0)
    tracker = TaskTracker()
    for start in range(0, 30_000, 3000):
        display.show(watched(tracker, "running", range(start, start + 3000)))
    assert len(display.printed) == MAX_TASKS
    assert len([x for x in lines if not x.startswith("Overall")]) == MAX_TASKS
    assert lines[-1] == "Overall: running 5% (0/3000 complete, 3000 running; 3000 tasks not shown)"


def test_plain_display_throttles_a_task_but_not_its_status() -> None:
    lines: list[str] = []
    display = PlainDisplay(lines.append, interval=3600)
    tracker = TaskTracker()
    display.show(watched(tracker, "running", range(1), percent=1))
    display.show(watched(tracker, "running", range(1), percent=2))  # not due
    display.show(watched(tracker, "complete", range(1), percent=100))  # a new status
    assert [x for x in lines if not x.startswith("Overall")] == [
        "t0: running 1%",
        "t0: complete 100%",
    ]


def test_live_display_draws_text_never_markup_or_escapes() -> None:
    out = io.StringIO()
    display = LiveDisplay(out)
    display.console = Console(file=out, width=100, height=12, force_terminal=True)
    display.live.console = display.console
    tracker = TaskTracker()
    snap = watched(tracker, "running", range(40), name=f"[bold red]x[/]{EVIL}", message=EVIL)
    display.show(snap)
    display.close(snap)
    text = out.getvalue()
    assert "[bold red]x[/]" in text  # brackets stay text
    for seq in ("\x1b]", "\x07", "\x1b[2J", "\x9b", "\u202e"):
        assert seq not in text
    assert "+31 more" in text  # 9 rows fit in 12 lines; the others are counted
    assert text.rfind("\x1b[?25h") > text.rfind("\x1b[?25l") >= 0


@pytest.mark.parametrize("live", ["--live", "--no-live"])
def test_the_command_writes_through_the_output_wrapper(live: str) -> None:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "locmem"}):
        session = ProgressSession.create({"a": f"Import{EVIL}"})
        session.error("a", f"Nope{EVIL}")
        out = io.StringIO()
        with pytest.raises(SystemExit) as ended:
            call_command("progress", "watch", session.session_id, live, stdout=out)
    assert ended.value.code == 1
    text = out.getvalue()
    for seq in ("\x1b]", "\x07", "\x1b[2J", "\x9b", "\u202e"):
        assert seq not in text
    assert "Import]0;pwned[2J31m" in text
    assert text.endswith(
        "Failed: 0% (0/1 complete, 1 failed); Import]0;pwned[2J31m: Nope]0;pwned[2J31m.\n"
    ), text
