"""``render.staff``: what the staff page shows of a session, from plain values."""

from __future__ import annotations

from typing import Any

from django.utils import translation

from progress_ui.core.snapshot import SessionSnapshot, TaskSnapshot, expired_snapshot
from progress_ui.engine.listing import Listed
from progress_ui.render.staff import (
    MAX_OWNER_LENGTH,
    owner_label,
    staff_row,
    tasks_text,
    time_left,
)

SID = "S" * 32


def task(name: str = "T", **fields: Any) -> TaskSnapshot:
    base: dict[str, Any] = {
        "name": name,
        "status": "running",
        "percent": 0,
        "message": "",
        "current": None,
        "total": None,
        "simulated": False,
        "weight": 1.0,
        "step": None,
        "steps": None,
        "step_name": "",
        "started_at": None,
        "finished_at": None,
        "rate": None,
        "eta": None,
        "stalled": False,
    }
    return TaskSnapshot(**{**base, **fields})  # type: ignore[typeddict-item]


def snapshot(*tasks: TaskSnapshot, status: str = "running", percent: int = 0) -> SessionSnapshot:
    return SessionSnapshot(
        session_id=SID,
        status=status,
        overall_percent=percent,
        tasks={f"t{n}": t for n, t in enumerate(tasks)},
        expired=False,
    )


def test_owner_labels() -> None:
    users = {"7": "alice"}
    assert owner_label("user:7", users) == "alice"
    assert owner_label("user:8", users) == "user:8"  # a deleted user
    assert owner_label("browser:" + "f" * 64, users) == "Anonymous visitor"
    assert owner_label(None, users) == "Anyone with the link"
    long = owner_label("team:" + "x\n\x1b" * 500, users)
    assert len(long) == MAX_OWNER_LENGTH and "\n" not in long and "\x1b" not in long
    with translation.override("de"):
        assert owner_label(None, users) != "Anyone with the link"


def test_task_names_are_cut_and_counted() -> None:
    assert tasks_text(["Import", "Prices"]) == "Import, Prices"
    text = tasks_text(["A" * 500, "B\nB", "C", "D", "E"])
    assert text == f"{'A' * 59}\u2026, B B, C (+2 more)"


def test_time_left_is_the_longest_estimate_of_the_running_tasks() -> None:
    assert time_left(snapshot(task(eta=30.0), task(eta=125.0), task(status="complete"))) == (
        "2 minutes"
    )
    assert time_left(snapshot(task(stalled=True))) == "stalled"
    assert time_left(snapshot(task(), status="running")) == ""
    assert time_left(snapshot(task(status="complete", eta=None), status="complete")) == ""


def test_a_row_names_the_failure_and_an_expired_session() -> None:
    listed = Listed(SID, 1_780_000_000.0, {"format": 1, "tasks": [], "owner": "user:7"})
    failed = snapshot(
        task("Mail", status="error", message="SMTP <refused>\n" + "x" * 500),
        task("Other", message="still going"),
        status="error",
        percent=40,
    )
    row = staff_row(listed, failed, {"7": "alice"})
    shown = (row.owner, row.status, row.status_label, row.percent)
    assert shown == ("alice", "error", "Failed", 40)
    assert row.message.startswith("SMTP <refused> x") and len(row.message) == 160
    assert row.started.isoformat() == "2026-05-28T20:26:40+00:00"
    gone = staff_row(listed, expired_snapshot(SID, {"a": "A"}), {})
    assert (gone.status, gone.status_label) == ("expired", "Expired")


def test_a_row_shows_progress_uis_own_message_in_the_viewers_language() -> None:
    listed = Listed(SID, 1_780_000_000.0, {"format": 1, "tasks": [], "owner": ""})
    lost = snapshot(task(status="error", message="The worker stopped responding."), status="error")
    mine = snapshot(task(status="error", message="Worker stopped."), status="error")
    with translation.override("de"):
        assert staff_row(listed, lost, {}).message == "Der Worker-Prozess reagiert nicht mehr."
        assert staff_row(listed, mine, {}).message == "Worker stopped."
    assert staff_row(listed, lost, {}).message == "The worker stopped responding."
