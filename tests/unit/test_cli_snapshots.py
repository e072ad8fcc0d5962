"""``read_snapshot``: every field checked and made safe, tasks tracked up to a cap."""

from __future__ import annotations

import json

import pytest

from progress_ui.cli.snapshots import (
    MAX_TASKS,
    BadSnapshot,
    TaskTracker,
    Watched,
    read_snapshot,
)
from progress_ui.core.status import ReportedStatus as R

EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e"


def snap(status: str = "running", **tasks: dict[str, object]) -> dict[str, object]:
    return {
        "session_id": "S" * 32,
        "status": status,
        "overall_percent": 10,
        "tasks": tasks or {"a": {"status": status}},
    }


def read(value: object, tracker: TaskTracker | None = None) -> Watched:
    return read_snapshot(value, TaskTracker() if tracker is None else tracker)


def test_every_text_field_is_sanitised() -> None:
    raw = snap(
        **{
            f"id{EVIL}": {
                "name": f"n{EVIL}",
                "status": "running",
                "message": f"m{EVIL}",
                "step": 1,
                "step_name": f"s{EVIL}",
            }
        }
    )
    raw["session_id"] = f"x{EVIL}"
    watched = read(raw)
    (task_id,) = watched.tasks
    task = watched.tasks[task_id]
    for text in (task_id, task.name, task.message, task.step_name, watched.session_id):
        # The task id is a key, never shown; the texts that are shown are printable.
        if text is task_id:
            continue
        assert all(ch.isprintable() for ch in text), repr(text)
    assert task.name == "n]0;pwned[2J31m"


@pytest.mark.parametrize(
    "status", ["finished", "", None, 3, EVIL, "RUNNING", json.loads("[" * 950 + "]" * 950)]
)
def test_unknown_statuses_are_refused_with_a_safe_message(status: object) -> None:
    for raw in (snap(**{"a": {"status": status}}), {**snap(), "status": status}):
        with pytest.raises(BadSnapshot) as caught:
            read(raw)
        assert "unknown status" in str(caught.value)
        assert all(ch.isprintable() for ch in str(caught.value))


@pytest.mark.parametrize(
    "value",
    [
        [],
        "snapshot",
        {"status": "running"},
        {"status": "running", "tasks": []},
        snap(**{"a": "running"}),
        snap(**{"a": {"status": "running", "name": ["a", "list"]}}),
        snap(**{"a": {"status": "running", "message": {"an": "object"}}}),
        json.loads("[" * 900 + "]" * 900),
    ],
)
def test_what_is_not_a_snapshot_is_refused(value: object) -> None:
    with pytest.raises(BadSnapshot):
        read(value)


def test_numbers_are_finite_and_bounded() -> None:
    raw = snap(
        a={"status": "running", "percent": 1e308, "current": float("nan"), "total": "9"},
        b={"status": "running", "percent": -5, "step": True, "steps": 10**30},
    )
    raw["overall_percent"] = float("inf")
    watched = read(raw)
    a, b = watched.tasks["a"], watched.tasks["b"]
    assert (a.percent, a.current, a.total) == (100, None, None)
    assert (b.percent, b.step, b.steps) == (0, None, None)
    assert watched.overall_percent == 0
    assert watched.expired is False


def test_tasks_beyond_the_cap_are_counted_not_kept() -> None:
    tracker = TaskTracker()
    first = read(snap(**{f"t{i}": {"status": "running"} for i in range(MAX_TASKS + 500)}), tracker)
    assert len(first.tasks) == MAX_TASKS
    assert first.untracked == 500
    assert first.counts == {R.RUNNING: MAX_TASKS + 500}
    # New ids later: counted, never kept; the first ones stay tracked.
    later = read(snap(**{f"new{i}": {"status": "complete"} for i in range(2000)}), tracker)
    assert later.tasks == {}
    assert later.untracked == 2000
    assert later.counts == {R.COMPLETE: 2000}
    assert len(tracker) == MAX_TASKS
    again = read(snap(t1={"status": "complete"}), tracker)
    assert list(again.tasks) == ["t1"]


def test_task_ids_are_kept_short() -> None:
    watched = read(snap(**{"x" * 10_000: {"status": "running"}}))
    assert [len(task_id) for task_id in watched.tasks] == [128]


def test_settled_counts_every_task() -> None:
    tracker = TaskTracker(limit=1)
    running_untracked = snap("complete", a={"status": "complete"}, b={"status": "running"})
    assert not read(running_untracked, tracker).settled
    assert read(snap("complete", a={"status": "complete"}), tracker).settled
    assert read(snap("error", a={"status": "error"}, b={"status": "pending"}), tracker).settled
    assert read({**snap("running"), "expired": True}, tracker).settled
