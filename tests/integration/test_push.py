"""Changes pushed through Redis pub/sub to the hub's pollers (``progress_ui.streaming.push``):
one read and one rendering per change whatever the number of viewers, no reads
for a session nobody changes, and polling whenever the feed is lost."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from progress_ui import ProgressSession
from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.streaming.hub import get_hub
from progress_ui.streaming.sse_stream import sse_stream
from progress_ui.wire import sse
from tests.conftest import require_redis
from tests.integration.test_cache_outage import free_port, start_redis
from tests.support.workers import stop_process

pytestmark = pytest.mark.redis

#: Long enough that polling alone could never deliver what these tests wait for.
NO_POLL = 60.0

renders: list[str] = []


def render(snapshot: SessionSnapshot) -> str:
    """One function for every viewer, so the hub can share its output; counts calls."""
    text = f"{snapshot['status']} {snapshot['overall_percent']}"
    renders.append(text)
    return text


@pytest.fixture
def redis_alias() -> Iterator[str]:
    require_redis()
    with override_settings(
        PROGRESS_UI={"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60, "COMPLETING_DURATION": 0}
    ):
        caches["redis"].clear()
        renders.clear()
        yield "redis"
        caches["redis"].clear()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[float]:
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
    def __init__(self, stream: AsyncIterator[str]) -> None:
        self.chunks: list[str] = []
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[str]) -> None:
        async for chunk in stream:
            self.chunks.append(chunk)

    def saw(self, text: str) -> bool:
        return any(f"data: {text}\n" in c for c in self.chunks)


async def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for condition")
        await asyncio.sleep(0.005)


async def test_one_read_and_one_render_per_change_whatever_the_viewers(
    redis_alias: str, reads: list[float]
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=1)
    viewers = [Viewer(sse_stream(session, poll_interval=NO_POLL, render=render))]
    await until(lambda: viewers[0].saw("running 1"))
    viewers += [
        Viewer(sse_stream(session, poll_interval=NO_POLL, render=render)) for _ in range(299)
    ]
    await until(lambda: all(v.saw("running 1") for v in viewers))
    channel = get_hub().channel(session.session_id)
    assert channel is not None
    reads_before, renders_before = len(reads), len(renders)

    changes = 20
    for step in range(2, 2 + changes):
        await sync_to_async(session.update)("a", percent=step)
        await until(lambda step=step: all(v.saw(f"running {step}") for v in viewers))
    await sync_to_async(session.complete)("a")
    await asyncio.wait_for(asyncio.gather(*(v.task for v in viewers)), 20)

    # 21 changes (20 updates and the completion), 300 viewers: one read and one
    # rendering each; one per viewer would be 6,300.
    assert len(reads) - reads_before == changes + 1
    assert renders[renders_before:] == [f"running {p}" for p in range(2, 2 + changes)] + [
        "complete 100"
    ]
    for viewer in viewers:
        assert viewer.chunks[-1].endswith("data: done\n\n")


async def test_a_writer_flood_reaches_viewers_once_per_poll_interval(
    redis_alias: str, reads: list[float]
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=1)
    viewers = [Viewer(sse_stream(session, poll_interval=0.1, render=render)) for _ in range(3)]
    await until(lambda: all(v.saw("running 1") for v in viewers))
    reads_before = len(reads)

    def flood() -> int:
        # Every update stored and published (nothing held back by the writer):
        # the hub alone keeps the viewers to one read per interval.
        no_holding = {"CACHE_ALIAS": "redis", "UPDATE_WRITE_INTERVAL": 0}
        with override_settings(PROGRESS_UI=no_holding):
            began, percent = time.monotonic(), 1
            while time.monotonic() - began < 1.0:
                percent = percent % 97 + 2
                session.update("a", percent=percent, message=str(time.monotonic()))
        session.update("a", percent=99)
        return percent

    began = time.monotonic()
    await sync_to_async(flood, thread_sensitive=False)()
    await until(lambda: all(v.saw("running 99") for v in viewers))
    elapsed = time.monotonic() - began
    times = reads[reads_before:]
    assert len(times) <= elapsed / 0.1 + 2, (len(times), elapsed)
    # One read per interval, after a burst of two at most.
    assert sum(b - a < 0.09 for a, b in itertools.pairwise(times)) <= 2, times
    for viewer in viewers:
        assert len(viewer.chunks) <= 1 + elapsed / 0.1 + 2


async def test_a_change_reaches_viewers_without_waiting_for_a_poll(redis_alias: str) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=5)
    viewer = Viewer(sse_stream(session, poll_interval=NO_POLL, render=render))
    await until(lambda: viewer.saw("running 5"))
    await sync_to_async(session.update)("a", percent=60)
    await until(lambda: viewer.saw("running 60"), timeout=5)
    # The viewer learns that at once, too (and, without MISSING_GRACE, ends).
    grace_off = {"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60, "MISSING_GRACE": 0}
    with override_settings(PROGRESS_UI=grace_off):
        await sync_to_async(session.delete)()
        await asyncio.wait_for(viewer.task, 5)
    assert viewer.chunks[-1].endswith("data: done\n\n")


async def test_without_push_the_change_waits_for_the_poll(redis_alias: str) -> None:
    # The contrast: the same change, PUSH off, is not delivered before the poll.
    with override_settings(
        PROGRESS_UI={"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60, "PUSH": False}
    ):
        session = await sync_to_async(ProgressSession.create)({"a": "A"})
        await sync_to_async(session.update)("a", percent=5)
        viewer = Viewer(sse_stream(session, poll_interval=NO_POLL, render=render))
        await until(lambda: viewer.saw("running 5"))
        await sync_to_async(session.update)("a", percent=60)
        await asyncio.sleep(1.0)
        assert not viewer.saw("running 60")
        viewer.task.cancel()


@pytest.fixture
def private_redis() -> Iterator[int]:
    """A Redis server of this test's own (its pub/sub clients get killed); stopped by PID."""
    port = free_port()
    server = start_redis(port)
    alias = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
    }
    conf = {"CACHE_ALIAS": "private", "MAX_STREAM_DURATION": 60, "COMPLETING_DURATION": 0}
    try:
        with override_settings(CACHES={**settings.CACHES, "private": alias}, PROGRESS_UI=conf):
            renders.clear()
            yield port
    finally:
        stop_process(server)


async def test_a_lost_feed_falls_back_to_polling_without_losing_a_change(
    private_redis: int,
) -> None:
    interval = 0.05
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=5)
    viewer = Viewer(sse_stream(session, poll_interval=interval, render=render))
    await until(lambda: viewer.saw("running 5"))
    channel = get_hub().channel(session.session_id)
    assert channel is not None and channel.feed is not None and channel.push_channel
    feed, name = channel.feed, channel.push_channel
    await until(lambda: feed.watching(name))
    # Pushed: a running bar is redrawn every interval but not read.
    before = channel.reads
    await asyncio.sleep(10 * interval)
    assert channel.reads == before

    admin = redis.Redis(port=private_redis)
    assert admin.client_kill_filter(_type="pubsub") >= 1
    await sync_to_async(session.update)("a", percent=50)  # published to nobody
    await until(lambda: viewer.saw("running 50"), timeout=5)
    assert feed.losses == 1

    await until(lambda: feed.watching(name), timeout=10)  # resubscribed
    await asyncio.sleep(2 * interval)  # the read after resubscribing, and a poll under way
    before = channel.reads
    await asyncio.sleep(10 * interval)
    assert channel.reads == before
    await sync_to_async(session.complete)("a")
    await asyncio.wait_for(viewer.task, 5)
    assert [c for c in viewer.chunks if c != sse.HEARTBEAT][-2].endswith("data: complete 100\n\n")


async def test_viewers_share_one_rendering_of_each_change_and_get_changes_alone(
    redis_alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from progress_ui.render.display import (
        OUTCOME_REGION,
        STATUS_REGION,
        SUMMARY_REGION,
        region_id,
        task_region,
    )
    from progress_ui.streaming import sse_stream as sse_stream_module

    calls: list[bool] = []
    real = sse_stream_module.render_partials

    def counting(snapshot: SessionSnapshot, previous: SessionSnapshot | None = None) -> Any:
        calls.append(previous is None)
        return real(snapshot, previous)

    monkeypatch.setattr(sse_stream_module, "render_partials", counting)
    session = await sync_to_async(ProgressSession.create)({"a": "A", "b": "B", "c": "C"})
    await sync_to_async(session.update)("a", percent=1)
    viewers = [Viewer(sse_stream(session, poll_interval=NO_POLL)) for _ in range(100)]
    await until(lambda: all(len(v.chunks) == 1 for v in viewers))
    sid = session.session_id
    # The first message of each viewer holds every region.
    assert all(task_region(sid, "c") in v.chunks[0] for v in viewers)
    calls.clear()

    for step in range(1, 11):
        await sync_to_async(session.update)("b", percent=5 * step)
        await until(lambda step=step: all(len(v.chunks) == 1 + step for v in viewers))
    # Ten changes, a hundred viewers: ten renderings, each of the change alone.
    assert calls == [False] * 10
    ids = re.compile(r'<hx-partial id="([^"]+)"')
    for viewer in viewers:
        for message in viewer.chunks[1:]:
            assert ids.findall(message) == [
                region_id(sid, SUMMARY_REGION),
                task_region(sid, "b"),
                region_id(sid, STATUS_REGION),
                region_id(sid, OUTCOME_REGION),
            ]
    for viewer in viewers:
        viewer.task.cancel()


async def test_sessions_followed_while_the_feed_connects_are_pushed_too(redis_alias: str) -> None:
    # Several pollers start at once: all but the first ask while the feed's
    # connection is still being made, and must be subscribed all the same.
    sessions = [await sync_to_async(ProgressSession.create)({"a": "A"}) for _ in range(8)]
    for session in sessions:
        await sync_to_async(session.update)("a", percent=5)
    viewers = [Viewer(sse_stream(sessions[0], poll_interval=NO_POLL, render=render))]
    for _ in range(4):  # the feed starts connecting
        await asyncio.sleep(0)
    viewers += [Viewer(sse_stream(s, poll_interval=NO_POLL, render=render)) for s in sessions[1:]]
    await until(lambda: all(v.saw("running 5") for v in viewers))
    for session in sessions:
        channel = get_hub().channel(session.session_id)
        assert channel is not None and channel.feed is not None and channel.push_channel
        feed, name = channel.feed, channel.push_channel
        await until(lambda feed=feed, name=name: feed.watching(name), timeout=5)
    for session in sessions:
        await sync_to_async(session.update)("a", percent=60)
    await until(lambda: all(v.saw("running 60") for v in viewers), timeout=5)
    for viewer in viewers:
        viewer.task.cancel()
