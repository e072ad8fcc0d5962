"""Sync (WSGI) streams on the process's hub loop: one poller and one rendering per
change for all sync viewers of a session, leaving the hub when closed early."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings
from django.utils import translation

from progress_ui import ProgressSession
from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.engine import store
from progress_ui.streaming import wsgi_loop
from progress_ui.streaming.hub import get_hub
from progress_ui.wire import sse
from tests.conftest import _use_backend
from tests.support.streams import sync_sse

VIEWERS = 20
INTERVAL = 0.05


@pytest.fixture(params=["locmem", "redis"])
def hub_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    for alias in _use_backend(request.param, request):
        # One frame per completion: the rendering count below counts changes.
        with override_settings(
            PROGRESS_UI={"CACHE_ALIAS": alias, "MAX_STREAM_DURATION": 60, "COMPLETING_DURATION": 0}
        ):
            yield alias


class Reads:
    """Every snapshot read of the progress cache, async (the hub's) or sync (a
    viewer polling for itself): (thread that made it, session read)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def of(self, session: ProgressSession) -> list[str]:
        """The threads that read ``session``, one entry per read. Other sessions
        are left out: the process's liveness thread renews sessions claimed by
        earlier tests, and counting those made this file fail after them."""
        return [thread for thread, read in self.calls if read == session.session_id]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    found = Reads()
    original, aoriginal = store.read_all, store.aread_all

    def counting(session_id: str, *args: Any, **kwargs: Any) -> Any:
        found.calls.append((threading.current_thread().name, session_id))
        return original(session_id, *args, **kwargs)

    async def acounting(session_id: str, *args: Any, **kwargs: Any) -> Any:
        found.calls.append((threading.current_thread().name, session_id))
        return await aoriginal(session_id, *args, **kwargs)

    monkeypatch.setattr(store, "read_all", counting)
    monkeypatch.setattr(store, "aread_all", acounting)
    return found


def on_hub_loop(fn: Callable[[], Any]) -> Any:
    """``fn()`` run on the hub loop (where its hub lives)."""

    async def call() -> Any:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), wsgi_loop.hub_loop()).result(10)


class SyncViewer:
    """A thread reading one sync SSE stream into a list, as a WSGI worker would."""

    def __init__(self, stream: Iterator[str]) -> None:
        self.chunks: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Iterator[str]) -> None:
        for chunk in stream:
            self.chunks.append(chunk)

    def saw(self, text: str) -> bool:
        return any(text in c for c in self.chunks)


def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for condition")
        time.sleep(0.01)


def test_sync_viewers_share_one_poller_and_one_rendering(hub_backend: str, reads: Reads) -> None:
    renders: list[str] = []

    def render(snapshot: SessionSnapshot) -> str:
        renders.append(threading.current_thread().name)
        return f"{snapshot['status']} {snapshot['overall_percent']}"

    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=10)
    viewers = [
        SyncViewer(sync_sse(session, poll_interval=INTERVAL, render=render)) for _ in range(VIEWERS)
    ]
    until(lambda: all(v.saw("running 10") for v in viewers))
    assert on_hub_loop(lambda: (get_hub().sessions, get_hub().viewers)) == (1, VIEWERS)

    start, before = time.monotonic(), len(reads.of(session))
    time.sleep(1.0)
    elapsed, made = time.monotonic() - start, len(reads.of(session)) - before
    if hub_backend == "redis":
        assert made == 0, made  # pushed: a session nobody changes is not read
    else:
        # About one read per interval; one per viewer would be ~400.
        assert 3 <= made <= elapsed / INTERVAL + 5, made

    session.update("a", percent=70)
    until(lambda: all(v.saw("running 70") for v in viewers))
    session.complete("a")
    for viewer in viewers:
        viewer.thread.join(20)
        assert not viewer.thread.is_alive()
        progress = [c.split("\n")[-3] for c in viewer.chunks if c != sse.HEARTBEAT]
        assert progress == [
            "data: running 10",
            "data: running 70",
            "data: complete 100",
            "data: done",
        ]
    # Three changes, rendered once each for all twenty viewers, on the hub loop;
    # and every read but the writer's own (this thread's, and its process's
    # liveness thread renewing the task it claimed) was the hub's.
    assert len(renders) == 3, renders
    assert set(renders) == {"progress_ui hub"}
    readers = set(reads.of(session)) - {threading.current_thread().name, "progress_ui liveness"}
    assert readers <= {"progress_ui hub", "progress_ui hub sync_0"}, readers
    assert on_hub_loop(lambda: (get_hub().sessions, get_hub().viewers)) == (0, 0)


def test_sync_viewers_with_pollers_of_their_own_each_read_the_cache(
    locmem: str, reads: Reads
) -> None:
    # The contrast that shows the counter counts: ProgressSession.stream() polls
    # for its caller alone (on an event loop of its own, in its caller's thread,
    # each blocking read in a worker thread of that loop), never through the hub.
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=10)
    viewers = [SyncViewer(session.stream(poll_interval=INTERVAL)) for _ in range(10)]
    until(lambda: all(v.saw('"percent":10') for v in viewers))
    before = len(reads.of(session))
    time.sleep(0.5)
    assert len(reads.of(session)) - before >= 40
    readers = set(reads.of(session)[before:])
    assert readers and not readers & {"progress_ui hub", "progress_ui hub sync_0"}, readers
    session.complete("a")
    for viewer in viewers:
        viewer.thread.join(20)


def test_closing_a_sync_stream_early_leaves_the_hub(hub_backend: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=10)
    stream = sync_sse(session, poll_interval=INTERVAL)
    assert "data: " in next(stream)
    assert on_hub_loop(lambda: get_hub().viewers) == 1
    stream.close()  # what the WSGI server does when the client has gone
    # Closing waits for the async side: the hub is empty at once.
    assert on_hub_loop(lambda: (get_hub().sessions, get_hub().viewers)) == (0, 0)


def test_a_stream_never_started_holds_nothing(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})
    stream = sync_sse(session, poll_interval=INTERVAL)
    assert on_hub_loop(lambda: get_hub().viewers) == 0
    stream.close()


def test_the_callers_language_is_active_on_the_loop(locmem: str) -> None:
    def render(snapshot: SessionSnapshot) -> str:
        return f"lang={translation.get_language()}"

    session = ProgressSession.create({"a": "A"})
    session.complete("a")
    with translation.override("de"):
        german = sync_sse(session, render=render)
    with translation.override("fr"):
        french = sync_sse(session, render=render)
    assert "data: lang=de" in next(german)
    assert "data: lang=fr" in next(french)
    german.close()
    french.close()


def test_iterating_on_the_hub_loop_itself_is_refused() -> None:
    async def attempt() -> str:
        try:
            wsgi_loop.iterate_in_loop(lambda: aiter([]))
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    loop = wsgi_loop.hub_loop()
    result = asyncio.run_coroutine_threadsafe(attempt(), loop).result(10)
    assert "would block the hub loop" in result


def _child_runs_on_its_own_loop(results: Any) -> None:
    loop = wsgi_loop.hub_loop()
    pid = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, os.getpid()), loop).result(5)
    results.put((pid, loop.is_running()))


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_its_own_hub_loop() -> None:
    wsgi_loop.hub_loop()  # running here, before the fork
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_child_runs_on_its_own_loop, args=(results,))
    child.start()
    try:
        pid, running = results.get(timeout=20)
    finally:
        child.join(20)
        if child.is_alive():
            child.kill()
            child.join(5)
    # The parent's loop thread does not exist in the child: without a fresh
    # loop, run_coroutine_threadsafe there would wait forever.
    assert pid == child.pid
    assert running
