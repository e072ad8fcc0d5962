"""Coalesced ``update()`` (``progress_ui.engine.held``): a flood of updates costs
at most one store write per ``UPDATE_WRITE_INTERVAL``, and nothing is lost: the
newest fields are stored by the next call, the flush thread, an ending, or
before this process reads the session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from progress_ui import ProgressSession, ProgressStatus, TaskCancelled
from progress_ui.conf import current
from progress_ui.engine import held, store
from progress_ui.engine.plans import run


def interval(seconds: float) -> Any:
    return override_settings(
        PROGRESS_UI={
            "CACHE_ALIAS": current().CACHE_ALIAS,
            "UPDATE_WRITE_INTERVAL": seconds,
            "COMPLETING_DURATION": 0.0,
        }
    )


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The progress writes that reach the store (one entry per ``store.update``)."""
    seen: list[str] = []
    update = store.update

    def counted(session_id: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(session_id)
        return update(session_id, *args, **kwargs)

    monkeypatch.setattr(store, "update", counted)
    yield seen


def stored(session: ProgressSession, task_id: str) -> dict[str, Any]:
    """The task's record as stored, read without storing held updates first."""
    _, records = store.read_all(session.session_id, list(session.tasks))
    return dict(records[task_id])


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_flood_of_updates_is_stored_once_per_interval(backend: str, writes: list[str]) -> None:
    session = ProgressSession.create({"a": "Import"})
    with interval(0.1):
        began, calls = time.monotonic(), 0
        while time.monotonic() - began < 0.5:
            calls += 1
            session.update("a", current=calls, total=10**9, message=f"item {calls}")
        elapsed = time.monotonic() - began
        assert calls > 100  # a flood: far more calls than intervals
        # (Writes of this session only: other tests' held updates may be stored now.)
        stores = writes.count(session.session_id)
        assert 2 <= stores <= elapsed / 0.1 + 2, (calls, stores, elapsed)
        # Nothing more is called: the flush thread stores the newest fields.
        wait_for(lambda: stored(session, "a").get("current") == calls)
        assert stored(session, "a")["message"] == f"item {calls}"
        assert (session.session_id, "a") not in held.held_tasks()


def test_every_update_is_stored_with_a_zero_interval(backend: str, writes: list[str]) -> None:
    session = ProgressSession.create({"a": "Import"})
    with interval(0):
        for i in range(20):
            session.update("a", current=i, total=20)
    assert writes.count(session.session_id) == 20
    assert stored(session, "a")["current"] == 19


def test_the_first_update_after_a_quiet_interval_is_stored_at_once(
    backend: str, writes: list[str]
) -> None:
    session = ProgressSession.create({"a": "Import"})
    with interval(0.05):
        session.update("a", percent=10)
        time.sleep(0.06)
        session.update("a", percent=20)
        assert writes.count(session.session_id) == 2
        assert stored(session, "a")["percent"] == 20


def test_this_process_reads_the_updates_it_holds(backend: str) -> None:
    session = ProgressSession.create({"a": "Import", "b": "Report"})
    with interval(60):
        session.update("a", percent=10)
        session.update("a", percent=20, message="second")
        session.update("b", step=2, steps=3, step_name="prices.csv")
        assert stored(session, "a")["percent"] == 10  # held
        snapshot = ProgressSession.get(session.session_id).to_dict()  # type: ignore[union-attr]
    task = snapshot["tasks"]["a"]
    assert task["message"] == "second" and task["percent"] >= 20
    assert snapshot["tasks"]["b"]["step_name"] == "prices.csv"
    assert stored(session, "a")["percent"] == 20
    assert held.held_tasks() == set()


def test_an_ending_stores_the_update_held_before_it(backend: str) -> None:
    session = ProgressSession.create({"a": "Import", "b": "Report"})
    with interval(60):
        session.update("a", current=1, total=10)
        session.update("a", current=7, message="last words")
        session.complete("a")
        session.update("b", percent=5)
        session.update("b", percent=50, message="half-way")
        session.error("b", "It broke.")
        snapshot = session.to_dict()
    a, b = snapshot["tasks"]["a"], snapshot["tasks"]["b"]
    assert a["status"] == ProgressStatus.COMPLETE.value
    assert a["message"] == "last words" and a["current"] == 7
    assert b["status"] == ProgressStatus.ERROR.value and b["message"] == "It broke."
    assert b["percent"] == 50
    assert held.held_tasks() == set()


@pytest.mark.parametrize("ending", ["complete", "error"])
def test_an_ending_after_a_held_update_never_lowers_the_bar(backend: str, ending: str) -> None:
    """A held update that makes the percent unknown (``total=0``) is stored by
    the ending; the bar the ending starts from is what showed before, not the
    easing curve the held fields would show on their own (found by
    test_properties: 45 % read back as 25 % once the task completed)."""
    session = ProgressSession.create({"a": "Import"})
    with override_settings(
        PROGRESS_UI={
            "CACHE_ALIAS": current().CACHE_ALIAS,
            "UPDATE_WRITE_INTERVAL": 60,
            "COMPLETING_DURATION": 60,
        }
    ):
        session.update("a", current=45, total=100)
        assert session.to_dict()["tasks"]["a"]["percent"] == 45
        session.update("a", current=46, total=0)
        assert held.held_tasks() == {(session.session_id, "a")}
        if ending == "complete":
            session.complete("a")
        else:
            session.error("a", "It broke.")
        task = session.to_dict()["tasks"]["a"]
    assert task["status"] == ("running" if ending == "complete" else "error")
    assert task["current"] == 46 and task["total"] == 0
    assert task["percent"] >= 45, task


def test_a_cancel_by_this_process_stops_the_next_update(backend: str) -> None:
    session = ProgressSession.create({"a": "Import"})
    with interval(60):
        session.update("a", percent=10)
        viewer = ProgressSession.get(session.session_id)
        assert viewer is not None
        viewer.cancel()
        with pytest.raises(TaskCancelled):
            session.update("a", percent=20)
        with pytest.raises(TaskCancelled):
            session.update("a", percent=30)


def test_a_cancel_stored_elsewhere_stops_the_job_at_a_later_update(backend: str) -> None:
    session = ProgressSession.create({"a": "Import"})
    meta = store.load_meta(session.session_id)
    assert meta is not None

    def cancelled(record: dict[str, Any]) -> bool:
        record["status"] = ProgressStatus.CANCELLED.value
        record["message"] = "Cancelled."
        return True

    with interval(0.05):
        session.update("a", percent=10)
        # Written to the store as another process's cancel() would: this process
        # has no note of it, so the held updates run into it when stored.
        run(store.end_task(session.session_id, meta, "a", cancelled, ttl=60))
        deadline = time.monotonic() + 10
        with pytest.raises(TaskCancelled):
            while time.monotonic() < deadline:
                session.update("a", percent=20)
                time.sleep(0.001)
    assert session.to_dict()["tasks"]["a"]["status"] == ProgressStatus.CANCELLED.value


def test_async_updates_are_held_and_the_ending_stores_them(backend: str, writes: list[str]) -> None:
    session = ProgressSession.create({"a": "Import"})

    async def job() -> None:
        for i in range(1, 501):
            await session.aupdate("a", current=i, total=500, message=f"item {i}")
        await session.acomplete("a")

    with interval(60):
        asyncio.run(job())
        task = session.to_dict()["tasks"]["a"]
    assert writes.count(session.session_id) == 1  # the first; the rest went with the ending
    assert task["status"] == ProgressStatus.COMPLETE.value
    assert task["current"] == 500 and task["message"] == "item 500"
