"""The watcher's plain text and exit statuses, from checked snapshots."""

from __future__ import annotations

from progress_ui.cli.lines import outcome, overall_line, task_line
from progress_ui.cli.snapshots import TaskTracker, Watched, read_snapshot


def watched(status: str, tasks: dict[str, dict[str, object]], limit: int = 1000) -> Watched:
    value = {"status": status, "overall_percent": 50, "tasks": tasks}
    return read_snapshot(value, TaskTracker(limit))


def test_task_and_overall_lines() -> None:
    snap = watched(
        "running",
        {
            "a": {"name": "Import", "status": "running", "percent": 40, "current": 100,
                  "total": 250, "step": 2, "steps": 3, "step_name": "prices.csv",
                  "message": "100 of 250"},
            "b": {"name": "Update", "status": "pending"},
        },
    )  # fmt: skip
    assert task_line(snap.tasks["a"]) == (
        "Import: running 40% (100/250 step 2/3 prices.csv) - 100 of 250"
    )
    assert overall_line(snap) == "Overall: running 50% (0/2 complete, 1 running, 1 pending)"


def test_the_overall_line_says_how_many_tasks_are_not_shown() -> None:
    snap = watched("running", {f"t{i}": {"status": "running"} for i in range(5)}, limit=2)
    assert overall_line(snap) == (
        "Overall: running 50% (0/5 complete, 5 running; 3 tasks not shown)"
    )


def test_outcomes() -> None:
    assert outcome(None)[0] == 4
    done = watched("complete", {"a": {"status": "complete"}})
    assert outcome(done) == (0, "Complete: 50% (1/1 complete).")
    failed = watched(
        "error",
        {"a": {"status": "complete"}, "b": {"name": "B", "status": "error", "message": "503"}},
    )
    assert outcome(failed) == (1, "Failed: 50% (1/2 complete, 1 failed); B: 503.")
    assert outcome(watched("cancelled", {"a": {"status": "cancelled"}}))[0] == 2
    code, summary = outcome(watched("running", {"a": {"status": "running"}}))
    assert code == 4
    assert summary.startswith("Stopped before the session finished: running 50%")
