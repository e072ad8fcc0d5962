"""Viewers of a session that disappears keep looking for ``MISSING_GRACE`` (issue
21 M): a store that restarted empty loses a queued session, and its job, starting
later, stores it again; its viewers must see it run rather than "no longer
available". After the grace, the stream says the session is gone."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.test import override_settings

from progress_ui import ProgressSession
from progress_ui.conf import current as current_settings
from progress_ui.streaming.hub import get_hub
from progress_ui.streaming.ndjson_stream import ndjson_stream
from tests.conftest import _use_backend


@pytest.fixture(params=["locmem", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _use_backend(request.param, request)


def settings(**values: Any) -> Any:
    conf = current_settings()
    # A short heartbeat: with Redis pushes, an idle session is re-read (and found
    # gone: a cleared store publishes nothing) every HEARTBEAT_INTERVAL.
    base = {
        "CACHE_ALIAS": conf.CACHE_ALIAS,
        "POLL_INTERVAL": 0.05,
        "HEARTBEAT_INTERVAL": 0.2,
        "COMPLETING_DURATION": 0.0,
    }
    return override_settings(PROGRESS_UI={**base, **values})


class Lines:
    """A task reading an NDJSON stream, line by line."""

    def __init__(self, stream: AsyncIterator[str]) -> None:
        self.lines: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[str]) -> None:
        async for line in stream:
            self.lines.append(json.loads(line))

    async def until(self, predicate: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            if self.task.done():
                raise AssertionError(f"the stream ended: {self.lines}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out: {self.lines}")
            await asyncio.sleep(0.01)


def statuses(lines: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(line["status"], line["expired"]) for line in lines]


async def test_a_session_stored_again_within_the_grace_is_followed_to_its_end(
    backend: str,
) -> None:
    with settings(MISSING_GRACE=10.0):
        session = await sync_to_async(ProgressSession.create)({"a": "Import"})
        reference = session.to_reference()
        viewer = Lines(ndjson_stream(session))
        await viewer.until(lambda lines: len(lines) == 1)
        # The store restarts empty: the queued session is gone.
        await sync_to_async(caches[backend].clear)()
        assert await ProgressSession.aget(session.session_id) is None
        await asyncio.sleep(1.0)  # the poller reads nothing, several times
        # The job starts in its worker, which stores the session again.
        job = ProgressSession.from_reference(reference)
        await sync_to_async(job.update)("a", percent=40)
        await viewer.until(lambda lines: lines[-1]["status"] == "running")
        await sync_to_async(job.complete)("a")
        await asyncio.wait_for(viewer.task, 20)
    assert statuses(viewer.lines)[0] == ("pending", False)
    assert statuses(viewer.lines)[-1] == ("complete", False)
    assert not any(expired for _, expired in statuses(viewer.lines))
    assert get_hub().sessions == 0


async def test_after_the_grace_the_stream_says_the_session_is_gone(backend: str) -> None:
    with settings(MISSING_GRACE=0.5):
        session = await sync_to_async(ProgressSession.create)({"a": "Import"})
        viewer = Lines(ndjson_stream(session))
        await viewer.until(lambda lines: len(lines) == 1)
        await sync_to_async(caches[backend].clear)()
        lost = time.monotonic()
        await asyncio.wait_for(viewer.task, 20)
    took = time.monotonic() - lost
    seen = statuses(viewer.lines)
    assert seen[0] == ("pending", False)
    assert [expired for _, expired in seen].index(True) == len(seen) - 1  # the last line
    assert 0.5 <= took < 5, took


async def test_session_astream_looks_for_a_lost_session_too(backend: str) -> None:
    """``ProgressSession.stream()``/``astream()`` (their own poller, not the hub's)
    keep looking during the grace, as documented for both."""
    with settings(MISSING_GRACE=10.0):
        session = await sync_to_async(ProgressSession.create)({"a": "Import"})
        reference = session.to_reference()
        viewer = Lines(session.astream(poll_interval=0.05))
        await viewer.until(lambda lines: len(lines) == 1)
        await sync_to_async(caches[backend].clear)()
        await asyncio.sleep(0.5)  # it reads nothing, several times
        job = ProgressSession.from_reference(reference)
        await sync_to_async(job.update)("a", percent=40)
        await viewer.until(lambda lines: lines[-1]["status"] == "running")
        await sync_to_async(job.complete)("a")
        await asyncio.wait_for(viewer.task, 20)
    seen = statuses(viewer.lines)
    assert (seen[0], seen[-1]) == (("pending", False), ("complete", False))
    assert not any(expired for _, expired in seen)
    with settings(MISSING_GRACE=0.3):
        gone = await sync_to_async(ProgressSession.create)({"a": "Import"})
        viewer = Lines(gone.astream(poll_interval=0.05))
        await viewer.until(lambda lines: len(lines) == 1)
        await sync_to_async(caches[backend].clear)()
        await asyncio.wait_for(viewer.task, 20)
    assert statuses(viewer.lines)[-1] == ("error", True)


def test_the_default_grace_is_documented() -> None:
    from progress_ui.conf import ProgressSettings

    assert ProgressSettings().MISSING_GRACE == 30.0
