"""Cancel: a task or a whole session, cooperative in the work, refused to strangers."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest
from django.test import Client, override_settings

from progress_ui import ProgressSession, TaskCancelled
from progress_ui.render.display import task_region
from progress_ui.signals import task_cancelled

FAST = {"COMPLETING_DURATION": 0.0, "ITERATE_WRITE_INTERVAL": 0.0}


@pytest.fixture
def fast(backend: str) -> Any:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": backend, **FAST}):
        yield backend


def test_cancelled_task_reads_cancelled_and_keeps_its_bar(fast: str) -> None:
    session = ProgressSession.create({"a": "A", "b": "B"})
    session.update("a", percent=40)
    assert session.cancel("a") == ["a"]
    snapshot = session.to_dict()
    assert snapshot["tasks"]["a"]["status"] == "cancelled"
    assert snapshot["tasks"]["a"]["message"] == "Cancelled."
    assert snapshot["tasks"]["a"]["percent"] == 40
    assert snapshot["tasks"]["b"]["status"] == "pending"
    assert snapshot["status"] == "cancelled"
    assert not session.has_error and not session.is_complete and not session.is_running


def test_cancel_whole_session_leaves_finished_tasks_alone(fast: str) -> None:
    session = ProgressSession.create({"done": "Done", "run": "Run", "wait": "Wait"})
    session.start("done")
    session.complete("done")
    session.start("run")
    assert sorted(session.cancel(message="Stopped by Ann.")) == ["run", "wait"]
    tasks = session.to_dict()["tasks"]
    assert [tasks[t]["status"] for t in ("done", "run", "wait")] == [
        "complete",
        "cancelled",
        "cancelled",
    ]
    assert tasks["run"]["message"] == "Stopped by Ann."
    assert session.cancel() == []  # nothing left to cancel


def test_work_stops_at_its_next_update_or_iterate_step(fast: str) -> None:
    session = ProgressSession.create({"a": "A"})
    steps: list[int] = []
    started = threading.Event()

    def work() -> None:
        for n in session.iterate("a", range(1000), complete=False):
            steps.append(n)
            started.set()
            time.sleep(0.01)

    thread_result: list[Any] = []
    thread = threading.Thread(
        target=lambda: thread_result.append(session.add_sequential("a", work))
    )
    thread.start()
    assert started.wait(10)
    session.cancel("a")
    thread.join(10)
    task = thread_result[0]
    assert isinstance(task.exception, TaskCancelled)
    with pytest.raises(TaskCancelled):
        _ = task.result
    assert 0 < len(steps) < 1000
    assert session.to_dict()["tasks"]["a"]["status"] == "cancelled"


def test_explicit_check_and_update_raise_after_cancel(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.start("a")
    session.check_cancelled("a")  # not cancelled: nothing happens
    session.cancel("a")
    with pytest.raises(TaskCancelled):
        session.check_cancelled("a")
    with pytest.raises(TaskCancelled):
        session.update("a", percent=50)


def test_work_cancelled_before_it_starts_never_runs(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.cancel("a")
    ran: list[bool] = []
    task = session.add_sequential("a", lambda: ran.append(True))
    assert ran == []
    assert isinstance(task.exception, TaskCancelled)


def test_cancelled_future_shows_cancelled(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})
    future: Future[int] = Future()
    session.add_parallel("a", future)
    future.cancel()
    assert session.to_dict()["tasks"]["a"]["status"] == "cancelled"


def test_signal_is_sent_per_cancelled_task(locmem: str) -> None:
    seen: list[str] = []

    def receiver(sender: Any, session: ProgressSession, task_id: str, **kw: Any) -> None:
        seen.append(task_id)

    task_cancelled.connect(receiver)
    try:
        session = ProgressSession.create({"a": "A", "b": "B"})
        session.complete("b")
        session.cancel()
    finally:
        task_cancelled.disconnect(receiver)
    assert seen == ["a"]


def test_spec_stream_ends_at_a_cancel(locmem: str) -> None:
    session = ProgressSession.create({"a": "A", "b": "B"})
    session.start("a")
    session.start("b")
    stream = session.stream(poll_interval=0.01)
    next(stream)
    session.cancel("a")
    rest = list(stream)  # ends although b still runs
    assert '"cancelled"' in rest[-1]


# -- the endpoint ---------------------------------------------------------------


def test_cancel_endpoint_needs_post_csrf_and_ownership(locmem: str) -> None:
    client = Client(enforce_csrf_checks=True)
    session = ProgressSession.create({"a": "A"})  # no owner: anyone with the id
    url = f"/progress/{session.session_id}/cancel/"
    assert client.get(url).status_code == 405
    # Without a CSRF token: refused, nothing cancelled.
    assert client.post(url).status_code == 403
    assert session.to_dict()["tasks"]["a"]["status"] == "pending"


def test_strangers_get_the_same_404_as_a_missing_id(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"}, owner="user:42")
    stranger = Client()
    missing = stranger.post("/progress/" + "A" * 32 + "/cancel/")
    foreign = stranger.post(f"/progress/{session.session_id}/cancel/")
    assert missing.status_code == foreign.status_code == 404
    assert missing.content == foreign.content
    assert session.to_dict()["tasks"]["a"]["status"] == "pending"


def test_a_cancel_while_a_bar_completes_answers_regions_and_the_stream_goes_on(
    locmem: str,
) -> None:
    """A step that ended just before the click is left alone by cancel: its bar
    still animates to 100 (COMPLETING reads "running"), so the htmx answer (the
    component's regions, applied in place: the page's stream stays) shows it
    "In progress" beside the cancelled ones, and the stream brings it to
    "Complete" and then ends. (The browser test of the Cancel button once read
    the bars at once and failed whenever the click landed in that window.)"""
    session = ProgressSession.create({"a": "A", "b": "B"})
    bar_a = f'id="{task_region(session.session_id, "a")}"'
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": locmem, "COMPLETING_DURATION": 60}):
        session.start("a")
        session.complete("a")
        session.start("b")
        answer = Client().post(f"/progress/{session.session_id}/cancel/", HTTP_HX_REQUEST="true")
        html = answer.content.decode()
        tasks = session.to_dict()["tasks"]
        assert [tasks["a"]["status"], tasks["b"]["status"]] == ["running", "cancelled"]
    assert html.count("pui-state--running") == 1 and "pui-state--cancelled" in html
    assert html.startswith("<hx-partial ") and f'<hx-partial id="{bar_a[4:-1]}"' in html
    assert "pui-session" not in html  # no new component: the page's stays, with its stream
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": locmem, "COMPLETING_DURATION": 0}):
        stream: Any = Client().get(f"/progress/{session.session_id}/events/")
        sent = b"".join(stream.streaming_content).decode()
    assert "pui-state--complete" in sent and "pui-state--running" not in sent
    assert sent.rstrip().endswith("data: done")


@pytest.mark.django_db
def test_owner_cancels_and_gets_the_regions_back(locmem: str) -> None:
    client = Client()
    response = client.post("/tests-start-owned/")
    session_id = response.content.decode()
    session = ProgressSession.get(session_id)
    assert session is not None
    response = client.post(f"/progress/{session_id}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "Cancelled" in response.content.decode()
    assert session.to_dict()["tasks"]["a"]["status"] == "cancelled"
