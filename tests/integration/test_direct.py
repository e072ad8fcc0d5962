"""SSE streams written by their session's poller (``progress_ui.streaming.direct``):
Django's own ASGI handler, wrapped by ``release_stream_threads``, sends the
headers; the hub writes the messages to each viewer's ``send`` itself, one loop
over the viewers per change. Driven in-process, through the ASGI interface."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.asgi import get_asgi_application
from django.test import override_settings

from progress_ui import ProgressSession, release_stream_threads
from progress_ui.streaming import direct
from progress_ui.streaming.hub import get_hub
from tests.conftest import _use_backend
from tests.support.scopes import http_get

pytestmark = pytest.mark.skipif(not direct.SUPPORTED, reason="Python 3.12 starts tasks eagerly")

Message = MutableMapping[str, Any]


@pytest.fixture(params=["locmem", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _use_backend(request.param, request)


class Client:
    """One GET through an ASGI application, its messages kept as they come."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        path: str,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        gate: asyncio.Event | None = None,
    ) -> None:
        scope = http_get(path, headers)
        self.sent: list[Message] = []
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        #: While cleared, every body message waits for it: a client reading slowly.
        self.gate = gate
        self.task = asyncio.create_task(app(scope, self.inbox.get, self.send))

    async def send(self, message: Message) -> None:
        if self.gate is not None and message["type"] == "http.response.body":
            await self.gate.wait()
        self.sent.append(message)

    @property
    def body(self) -> str:
        return b"".join(m.get("body", b"") for m in self.sent[1:]).decode()

    def leave(self) -> None:
        self.inbox.put_nowait({"type": "http.disconnect"})


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for condition"
        await asyncio.sleep(0.01)


def ids(body: str) -> list[int]:
    return [int(i) for i in re.findall(r"^id: (\d+)$", body, re.MULTILINE)]


@pytest.fixture
def wrapped() -> Callable[..., Awaitable[None]]:
    return release_stream_threads(get_asgi_application())


async def test_the_poller_writes_every_change_to_every_viewer(
    backend: str, wrapped: Callable[..., Awaitable[None]]
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "Import"})
    await sync_to_async(session.update)("a", percent=10, message="first")
    path = f"/progress/{session.session_id}/events/"
    clients = [Client(wrapped, path) for _ in range(3)]
    await until(lambda: all("first" in c.body for c in clients))
    hub = get_hub()
    assert hub.direct_viewers == 3 and hub.sessions == 1
    for client in clients:
        assert client.sent[0]["status"] == 200
        headers = dict(client.sent[0]["headers"])
        assert headers[b"Content-Type"] == b"text/event-stream; charset=utf-8"
        assert b"no-store" in headers[b"Cache-Control"]

    await sync_to_async(session.update)("a", percent=60, message="second")
    await until(lambda: all("second" in c.body for c in clients))
    await sync_to_async(session.complete)("a")
    await asyncio.wait_for(asyncio.gather(*(c.task for c in clients)), 20)
    for client in clients:
        body = client.body
        assert body.startswith("id: ") and "retry: 2000" in body.split("\n\n")[0]
        assert body.endswith(f"event: done\nid: {ids(body)[-1]}\ndata: done\n\n")
        assert ids(body) == list(range(ids(body)[0], ids(body)[0] + len(ids(body))))
        assert client.sent[-1] == {"type": "http.response.body"}  # Django's last word
    assert hub.direct_viewers == 0 and hub.sessions == 0


async def test_a_slow_viewer_holds_nobody_back_and_then_gets_the_newest_state(
    backend: str, wrapped: Callable[..., Awaitable[None]]
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "Import"})
    await sync_to_async(session.update)("a", percent=10, message="step 0")
    path = f"/progress/{session.session_id}/events/"
    gate = asyncio.Event()
    gate.set()
    slow, fast = Client(wrapped, path, gate=gate), Client(wrapped, path)
    await until(lambda: "step 0" in slow.body and "step 0" in fast.body)
    gate.clear()  # the slow client stops reading
    for step in range(1, 6):
        await sync_to_async(session.update)("a", percent=10 + step, message=f"step {step}")
        await until(lambda step=step: f"step {step}" in fast.body)
    assert "step 1" not in slow.body
    gate.set()
    await until(lambda: "step 5" in slow.body)
    # It skipped what it could not take: the write it was in, then the newest.
    assert "step 3" not in slow.body
    for client in (slow, fast):
        client.leave()
    await asyncio.wait_for(asyncio.gather(slow.task, fast.task), 20)
    assert get_hub().direct_viewers == 0


async def test_a_viewer_that_leaves_is_forgotten(
    backend: str, wrapped: Callable[..., Awaitable[None]]
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "Import"})
    await sync_to_async(session.update)("a", percent=10, message="first")
    client = Client(wrapped, f"/progress/{session.session_id}/events/")
    await until(lambda: "first" in client.body)
    client.leave()
    await asyncio.wait_for(client.task, 20)
    hub = get_hub()
    assert hub.direct_viewers == 0 and hub.sessions == 0 and hub.viewers == 0


async def test_idle_viewers_get_heartbeats_and_end_at_the_maximum_duration(
    locmem: str, wrapped: Callable[..., Awaitable[None]]
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "Import"})
    await sync_to_async(session.update)("a", percent=10, message="first")
    quick = {"CACHE_ALIAS": "locmem", "HEARTBEAT_INTERVAL": 0.2, "MAX_STREAM_DURATION": 1.5}
    with override_settings(PROGRESS_UI=quick):
        client = Client(wrapped, f"/progress/{session.session_id}/events/")
        await asyncio.wait_for(client.task, 20)
    body = client.body
    assert "first" in body
    assert body.count(": ping\n\n") >= 2
    assert "event: done" not in body  # not settled: the browser reconnects


async def test_without_the_wrapper_the_stream_yields_every_message(backend: str) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "Import"})
    await sync_to_async(session.update)("a", percent=10, message="first")
    client = Client(get_asgi_application(), f"/progress/{session.session_id}/events/")
    await until(lambda: "first" in client.body)
    assert get_hub().direct_viewers == 0 and get_hub().viewers == 1
    await sync_to_async(session.complete)("a")
    await asyncio.wait_for(client.task, 20)
    assert client.body.endswith("data: done\n\n")


async def test_a_stopping_server_ends_direct_viewers_with_the_reconnect_hint(
    backend: str, wrapped: Callable[..., Awaitable[None]]
) -> None:
    session = await sync_to_async(ProgressSession.create)({"a": "Import"})
    await sync_to_async(session.update)("a", percent=10, message="first")
    client = Client(wrapped, f"/progress/{session.session_id}/events/")
    await until(lambda: "first" in client.body)
    hub = get_hub()
    hub.stop_streams()
    await asyncio.wait_for(client.task, 20)
    assert client.body.endswith("\n\nretry: 2000\n\n")


def group_path(*sessions: ProgressSession) -> str:
    return "/progress/events/?" + "&".join(f"session={s.session_id}" for s in sessions)


async def test_a_group_viewer_is_written_by_every_sessions_poller(
    backend: str, wrapped: Callable[..., Awaitable[None]]
) -> None:
    create = sync_to_async(ProgressSession.create)
    first, second = await create({"a": "Import"}), await create({"b": "Report"})
    await sync_to_async(first.update)("a", percent=10, message="first one")
    await sync_to_async(second.update)("b", percent=20, message="second one")
    client = Client(wrapped, group_path(first, second))
    await until(lambda: "first one" in client.body and "second one" in client.body)
    hub = get_hub()
    assert client.sent[0]["status"] == 200
    assert hub.direct_viewers == 1 and hub.sessions == 2 and hub.viewers == 2

    await sync_to_async(second.update)("b", percent=70, message="second moved")
    await until(lambda: "second moved" in client.body)
    # Only the session that changed, and only its changed regions.
    assert "first one" not in client.body.split("second moved")[0].split("second one")[-1]
    await sync_to_async(first.complete)("a")
    await asyncio.sleep(0.3)
    assert "event: done" not in client.body  # the other session still runs
    await sync_to_async(second.complete)("b")
    await asyncio.wait_for(client.task, 20)
    body = client.body
    assert body.endswith(f"event: done\nid: {ids(body)[-1]}\ndata: done\n\n")
    assert body.count("event: done") == 1
    assert ids(body) == list(range(ids(body)[0], ids(body)[0] + len(ids(body))))
    assert hub.direct_viewers == 0 and hub.sessions == 0 and hub.viewers == 0


async def test_a_slow_group_viewer_catches_up_with_each_sessions_newest_state(
    backend: str, wrapped: Callable[..., Awaitable[None]]
) -> None:
    create = sync_to_async(ProgressSession.create)
    first, second = await create({"a": "Import"}), await create({"b": "Report"})
    await sync_to_async(first.update)("a", percent=10, message="a 0")
    await sync_to_async(second.update)("b", percent=10, message="b 0")
    gate = asyncio.Event()
    gate.set()
    slow = Client(wrapped, group_path(first, second), gate=gate)
    fast = Client(wrapped, group_path(first, second))
    await until(lambda: all("a 0" in c.body and "b 0" in c.body for c in (slow, fast)))
    gate.clear()
    for step in range(1, 5):
        await sync_to_async(first.update)("a", percent=10 + step, message=f"a {step}")
        await sync_to_async(second.update)("b", percent=10 + step, message=f"b {step}")
        await until(lambda step=step: f"a {step}" in fast.body and f"b {step}" in fast.body)
    before = len(slow.sent)
    gate.set()
    await until(lambda: "a 4" in slow.body and "b 4" in slow.body)
    # The write it was in, then the newest of both sessions in one write.
    assert len(slow.sent) == before + 2, slow.sent[before:]
    assert "a 2" not in slow.body and "b 2" not in slow.body
    for client in (slow, fast):
        client.leave()
    await asyncio.wait_for(asyncio.gather(slow.task, fast.task), 20)
    assert get_hub().direct_viewers == 0


async def test_a_group_that_reaches_its_maximum_duration_ends_without_done(
    locmem: str, wrapped: Callable[..., Awaitable[None]]
) -> None:
    create = sync_to_async(ProgressSession.create)
    first, second = await create({"a": "Import"}), await create({"b": "Report"})
    await sync_to_async(first.complete)("a")
    await sync_to_async(second.update)("b", percent=10, message="still going")
    quick = {
        "CACHE_ALIAS": "locmem",
        "HEARTBEAT_INTERVAL": 0.2,
        "MAX_STREAM_DURATION": 1.5,
        "COMPLETING_DURATION": 0,
    }
    with override_settings(PROGRESS_UI=quick):
        client = Client(wrapped, group_path(first, second))
        await asyncio.wait_for(client.task, 20)
    body = client.body
    assert "still going" in body and body.count(": ping\n\n") >= 2
    assert "event: done" not in body  # one session still runs: the browser reconnects
    assert get_hub().direct_viewers == 0
