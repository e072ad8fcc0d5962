"""The shared per-session poller: one cache read per interval whatever the viewers."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import override_settings

from progress_ui import ProgressSession
from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.streaming import outage
from progress_ui.streaming.hub import get_hub
from progress_ui.streaming.sse_stream import sse_stream
from progress_ui.wire import sse
from tests.conftest import _use_backend
from tests.support.scopes import http_get

VIEWERS = 100
INTERVAL = 0.05


def render(snapshot: SessionSnapshot) -> str:
    return f"{snapshot['status']} {snapshot['overall_percent']}"


@pytest.fixture(params=["locmem", "redis"])
def hub_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _use_backend(request.param, request)


@pytest.fixture
def reads(hub_backend: str, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Times of every async snapshot read of the progress cache (``store.aread_all``:
    Django's ``aget_many``, or on Redis a native async MGET)."""
    from progress_ui.engine import store

    calls: list[float] = []
    original = store.aread_all

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        return await original(*args, **kwargs)

    monkeypatch.setattr(store, "aread_all", counting)
    return calls


class Viewer:
    """A task reading one SSE stream into a list."""

    def __init__(self, stream: AsyncIterator[str]) -> None:
        self.chunks: list[str] = []
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[str]) -> None:
        async for chunk in stream:
            self.chunks.append(chunk)

    def saw(self, text: str) -> bool:
        return any(text in c for c in self.chunks)


async def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for condition")
        await asyncio.sleep(0.01)


async def test_hundred_viewers_share_one_poller(hub_backend: str, reads: list[float]) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=10)
    hub = get_hub()
    viewers = [
        Viewer(sse_stream(session, poll_interval=INTERVAL, render=render)) for _ in range(VIEWERS)
    ]
    await until(lambda: all(v.saw("running 10") for v in viewers))
    assert hub.sessions == 1
    assert hub.viewers == VIEWERS

    start, before = time.monotonic(), len(reads)
    await asyncio.sleep(1.0)
    elapsed, made = time.monotonic() - start, len(reads) - before
    if hub_backend == "redis":
        # Changes are pushed (Redis pub/sub): a session nobody changes is not read.
        assert made == 0, made
    else:
        # About one read per interval (sleep plus read time makes it a little
        # less); one per viewer would be ~2000.
        assert 3 <= made <= elapsed / INTERVAL + 5, made

    await sync_to_async(session.update)("a", percent=70)
    await until(lambda: all(v.saw("running 70") for v in viewers))
    await sync_to_async(session.complete)("a")
    await asyncio.wait_for(asyncio.gather(*(v.task for v in viewers)), 20)
    for viewer in viewers:
        progress = [c for c in viewer.chunks if c != sse.HEARTBEAT]
        lines = [c.split("\n")[-3] for c in progress]
        # (Between 70 and 100 the completing animation may show a few steps.)
        assert lines[:2] == ["data: running 10", "data: running 70"]
        assert lines[-2:] == ["data: complete 100", "data: done"]
    assert hub.sessions == 0
    assert hub.viewers == 0


async def test_viewers_with_pollers_of_their_own_each_read_the_cache(reads: list[float]) -> None:
    # The contrast that shows the counter counts: ProgressSession.astream() polls
    # for its caller alone, so its reads scale with viewers.
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=10)
    viewers = [Viewer(session.astream(poll_interval=INTERVAL)) for _ in range(20)]
    await until(lambda: all(v.saw('"percent":10') for v in viewers))
    before = len(reads)
    await asyncio.sleep(0.5)
    assert len(reads) - before >= 40
    for viewer in viewers:
        viewer.task.cancel()
    await asyncio.gather(*(v.task for v in viewers), return_exceptions=True)


async def test_late_viewer_gets_current_state_without_waiting_for_a_poll(
    reads: list[float],
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=25)
    # A poll interval far longer than the test: only the first read ever happens.
    early = Viewer(sse_stream(session, poll_interval=60, render=render))
    await until(lambda: early.saw("running 25"))
    late = sse_stream(session, poll_interval=60, render=render, last_event_id="5")
    first = await asyncio.wait_for(anext(late), 10)
    assert first.endswith("data: running 25\n\n")
    assert len(reads) == 1
    early.task.cancel()
    await late.aclose()
    await asyncio.gather(early.task, return_exceptions=True)


async def test_last_viewer_leaving_stops_the_poller(reads: list[float]) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=10)
    hub = get_hub()
    viewers = [Viewer(sse_stream(session, poll_interval=INTERVAL)) for _ in range(3)]
    await until(lambda: all(v.chunks for v in viewers))
    channel = hub.channel(session.session_id)
    assert channel is not None
    viewers[0].task.cancel()
    await asyncio.sleep(0.2)
    assert not channel.task.done()  # two viewers left
    for viewer in viewers[1:]:
        viewer.task.cancel()
    await asyncio.gather(*(v.task for v in viewers), return_exceptions=True)
    await asyncio.sleep(0)
    assert channel.task.done()
    assert hub.sessions == 0
    count = len(reads)
    await asyncio.sleep(0.3)
    assert len(reads) == count


async def test_each_viewer_keeps_its_own_max_duration(reads: list[float]) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=10)
    short = Viewer(sse_stream(session, poll_interval=INTERVAL, max_duration=0.3))
    long = Viewer(sse_stream(session, poll_interval=INTERVAL))
    await asyncio.wait_for(short.task, 20)
    assert not short.saw("event: done")
    assert not long.task.done()
    await sync_to_async(session.complete)("a")
    await asyncio.wait_for(long.task, 20)
    assert long.chunks[-1].startswith("event: done\n")


async def test_cache_outage_ends_every_stream_so_browsers_reconnect(
    locmem: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outage, "_outage", outage._Outage())  # no outage before this one
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    # A real fault: the progress cache points at a port where nothing listens.
    broken = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
    }
    with (
        override_settings(
            CACHES={**settings.CACHES, "broken": broken}, PROGRESS_UI={"CACHE_ALIAS": "broken"}
        ),
        caplog.at_level(logging.WARNING, logger="progress_ui"),
    ):
        viewers = [Viewer(sse_stream(session)) for _ in range(3)]
        await asyncio.wait_for(asyncio.gather(*(v.task for v in viewers)), 30)
    for viewer in viewers:
        # No "done" (htmx would close for good) and no error event: the outage
        # may pass, so the browser reconnects after retry: and resumes.
        assert viewer.chunks == []
    # One warning for the process, whatever the number of pollers and streams;
    # no traceback (issue 21 O).
    warnings = [r for r in caplog.records if r.name == "progress_ui"]
    assert [r.levelno for r in warnings] == [logging.WARNING], caplog.text
    assert "cannot be reached" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    assert get_hub().sessions == 0


async def test_render_failure_ends_every_stream_with_a_safe_error(
    locmem: str, caplog: pytest.LogCaptureFixture
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})

    def broken(snapshot: SessionSnapshot) -> str:
        raise RuntimeError("secret: /srv/app password=hunter2")

    with caplog.at_level(logging.ERROR, logger="progress_ui"):
        viewers = [Viewer(sse_stream(session, render=broken)) for _ in range(3)]
        await asyncio.wait_for(asyncio.gather(*(v.task for v in viewers)), 30)
    for viewer in viewers:
        text = "".join(viewer.chunks)
        # The last message is exactly the closing one, after the error event.
        assert re.fullmatch(
            r"event: progress-error\nid: \d+\nretry: \d+\ndata: Something went wrong\.\n\n"
            r"event: done\nid: \d+\ndata: done\n\n",
            text,
        ), text
        assert "hunter2" not in text
    assert any(r.exc_info for r in caplog.records)
    assert get_hub().sessions == 0


async def test_client_disconnect_under_asgi_releases_the_poller(locmem: str) -> None:
    """Django's ASGI handler, called in-process: when the client goes away the
    stream is cancelled and the session's poller stops."""
    from django.core.asgi import get_asgi_application

    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=10)
    app = get_asgi_application()
    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_get(f"/progress/{session.session_id}/events/")
    hub = get_hub()
    handler = asyncio.create_task(app(scope, receive, send))
    await until(lambda: any(m.get("body") for m in sent))
    assert sent[0]["status"] == 200
    assert hub.viewers == 1
    gone.set()
    await asyncio.wait_for(handler, 20)
    assert hub.viewers == 0
    assert hub.sessions == 0


async def test_a_viewer_that_does_not_read_is_skipped_to_the_latest_state(locmem: str) -> None:
    """Nothing is buffered for a viewer that stops reading (issue 21 A): while it
    does not ask, the poller keeps only the latest snapshot, and its next item is
    that one, whatever it missed."""
    from progress_ui.streaming.hub import follow

    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=1)
    slow = aiter(follow(session, poll_interval=INTERVAL))
    first = await asyncio.wait_for(anext(slow), 10)
    assert first is not None and first["tasks"]["a"]["percent"] == 1
    channel = get_hub().channel(session.session_id)
    assert channel is not None
    seen = channel.version
    for percent in range(2, 52):  # 50 changes the viewer never asks for
        await sync_to_async(session.update)("a", percent=percent)
        await until(lambda before=seen: channel.version > before)  # type: ignore[misc]
        seen = channel.version
    await until(lambda: channel.latest["tasks"]["a"]["percent"] == 51)  # type: ignore[index]
    latest = await asyncio.wait_for(anext(slow), 10)
    assert latest is not None and latest["tasks"]["a"]["percent"] == 51
    await slow.aclose()  # type: ignore[attr-defined]
