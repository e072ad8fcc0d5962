"""The cap on open streams per process (``MAX_STREAMS``) and the shorter life of a
WSGI stream (``WSGI_MAX_STREAM_DURATION``): 503 with ``Retry-After`` beyond the
cap, places given back when streams end or clients leave, and a gunicorn flooded
with streams still answering pages."""

from __future__ import annotations

import gc
import http.client
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client, override_settings
from django.urls import reverse

from progress_ui import ProgressSession
from progress_ui.responses import BUSY_TEXT, CLIENT_BUSY_TEXT
from progress_ui.streaming import limits as stream_limits
from progress_ui.streaming.sse_stream import poll_after_max_duration
from progress_ui.wire import sse
from tests.conftest import _use_backend, require_redis
from tests.integration.test_servers import RawStream
from tests.support.servers import WSGI_THREADS, run_server


def url(name: str, session_id: str) -> str:
    return reverse(f"progress_ui:{name}", kwargs={"session_id": session_id})


def limits(**values: Any) -> Any:
    return override_settings(
        PROGRESS_UI={"CACHE_ALIAS": "locmem", "MAX_STREAM_DURATION": 60, **values}
    )


@pytest.fixture
def base(locmem: str) -> int:
    """Streams open in this process before the test (another test may have left
    one to the garbage collector)."""
    gc.collect()
    return stream_limits.open_streams()


def running() -> ProgressSession:
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=10)
    return session


def assert_busy(response: Any) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == str(stream_limits.RETRY_AFTER)
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == BUSY_TEXT
    assert {"private", "no-store"} <= set(response["Cache-Control"].split(", "))


# -- in process ------------------------------------------------------------------


def test_streams_beyond_the_cap_get_503_and_a_closed_one_frees_its_place(base: int) -> None:
    session, client = running(), Client()
    with limits(MAX_STREAMS=base + 2):
        first = client.get(url("sse", session.session_id))
        second = client.get(url("ndjson", session.session_id))  # NDJSON counts too
        assert (first.status_code, second.status_code) == (200, 200)
        assert stream_limits.open_streams() == base + 2
        assert_busy(client.get(url("sse", session.session_id)))
        assert_busy(client.get(url("ndjson", session.session_id)))
        # Ordinary endpoints are not streams.
        assert client.get(url("json", session.session_id)).status_code == 200

        first.close()  # what the WSGI server does when the client has gone
        assert stream_limits.open_streams() == base + 1
        third = client.get(url("sse", session.session_id))
        assert third.status_code == 200
        second.close()
        third.close()
    assert stream_limits.open_streams() == base


def test_a_stream_that_ends_gives_its_place_back(base: int) -> None:
    session = running()
    session.complete("a")
    with limits(MAX_STREAMS=base + 1):
        response = Client().get(url("sse", session.session_id))
        chunks = list(response.streaming_content)  # final state, then done
        assert chunks[-1].startswith(b"event: done\n")
        assert stream_limits.open_streams() == base
        assert Client().get(url("sse", session.session_id)).status_code == 200


def test_a_response_dropped_without_close_gives_its_place_back(base: int) -> None:
    session = running()
    with limits(MAX_STREAMS=base + 1):
        response = Client().get(url("sse", session.session_id))
        assert stream_limits.open_streams() == base + 1
        del response
        gc.collect()
        assert stream_limits.open_streams() == base


def test_a_stranger_beyond_the_cap_still_gets_the_404(base: int) -> None:
    with limits(MAX_STREAMS=0):
        response = Client().get(url("sse", "0" * 32))
    assert response.status_code == 404


def test_refusals_warn_once_a_minute_and_never_log_the_session_id(
    base: int, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        stream_limits._open, "warned_at", dict.fromkeys(stream_limits.Refused, -1e9)
    )
    session = running()
    with limits(MAX_STREAMS=base), caplog.at_level(logging.INFO):
        for _ in range(3):
            assert Client().get(url("sse", session.session_id)).status_code == 503
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["progress_ui"], caplog.text
    assert "MAX_STREAMS" in warnings[0].getMessage()
    # Django's request logger would write the path (the id) for every 503.
    assert session.session_id not in caplog.text


@pytest.mark.parametrize("name", ["sse", "ndjson"])
async def test_asgi_streams_are_capped_and_give_their_place_back(
    base: int, name: str, transactional_db: None
) -> None:
    session = await sync_to_async(running)()
    client = AsyncClient()
    with limits(MAX_STREAMS=base + 1):
        first = await client.get(url(name, session.session_id))
        assert first.status_code == 200 and first.is_async
        assert stream_limits.open_streams() == base + 1
        assert_busy(await client.get(url(name, session.session_id)))
        await sync_to_async(first.close)()  # what Django's ASGI handler does at the end
        assert stream_limits.open_streams() == base
        second = await client.get(url(name, session.session_id))
        assert second.status_code == 200
        await sync_to_async(session.complete)("a")
        async for _ in second.streaming_content:  # to the end: the place comes back
            pass
        assert stream_limits.open_streams() == base


# -- places: a group takes one per session; a client's share (issue 21 A) -----------


def group_url(*sessions: ProgressSession) -> str:
    query = "&".join(f"session={s.session_id}" for s in sessions)
    return f"{reverse('progress_ui:group_sse')}?{query}"


def assert_client_busy(response: Any) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == str(stream_limits.RETRY_AFTER)
    assert response.content.decode() == CLIENT_BUSY_TEXT
    assert {"private", "no-store"} <= set(response["Cache-Control"].split(", "))


async def test_an_asgi_group_stream_takes_a_place_per_session(
    base: int, transactional_db: None
) -> None:
    sessions = [await sync_to_async(running)() for _ in range(4)]
    client = AsyncClient()
    with limits(MAX_STREAMS=base + 3, MAX_STREAMS_PER_CLIENT=0):
        assert_busy(await client.get(group_url(*sessions)))  # 4 places: more than the cap
        group = await client.get(group_url(*sessions[:3]))
        assert group.status_code == 200
        assert stream_limits.open_streams() == base + 3
        assert_busy(await client.get(url("sse", sessions[3].session_id)))
        await sync_to_async(group.close)()
        assert stream_limits.open_streams() == base
        single = await client.get(url("sse", sessions[3].session_id))
        assert single.status_code == 200
        await sync_to_async(single.close)()


async def test_an_asgi_client_beyond_its_share_gets_429(base: int, transactional_db: None) -> None:
    sessions = [await sync_to_async(running)() for _ in range(3)]
    client = AsyncClient()
    with limits(MAX_STREAMS=base + 100, MAX_STREAMS_PER_CLIENT=4):
        group = await client.get(group_url(*sessions))
        single = await client.get(url("ndjson", sessions[0].session_id))
        assert (group.status_code, single.status_code) == (200, 200)  # 3 + 1 places
        assert_client_busy(await client.get(url("sse", sessions[1].session_id)))
        assert_client_busy(await client.get(group_url(sessions[2])))
        await sync_to_async(group.close)()  # the group gives its 3 places back
        again = await client.get(url("sse", sessions[1].session_id))
        assert again.status_code == 200
    for response in (single, again):
        await sync_to_async(response.close)()


def test_each_address_has_its_own_share(base: int) -> None:
    session = running()
    greedy = Client(REMOTE_ADDR="203.0.113.7")
    neighbour = Client(REMOTE_ADDR="2001:db8:1:2::7")
    with limits(MAX_STREAMS=base + 100, MAX_STREAMS_PER_CLIENT=2):
        held = [greedy.get(url("sse", session.session_id)) for _ in range(2)]
        assert [r.status_code for r in held] == [200, 200]
        assert_client_busy(greedy.get(url("ndjson", session.session_id)))
        held.append(Client(REMOTE_ADDR="203.0.113.8").get(url("sse", session.session_id)))
        held += [neighbour.get(url("sse", session.session_id)) for _ in range(2)]
        assert [r.status_code for r in held[2:]] == [200, 200, 200]
        # The same /64 is the same client.
        same_net = Client(REMOTE_ADDR="2001:db8:1:2::8")
        assert_client_busy(same_net.get(url("sse", session.session_id)))
        held[0].close()
        held.append(greedy.get(url("sse", session.session_id)))
        assert held[-1].status_code == 200
        for response in held:
            response.close()


@pytest.mark.django_db
def test_a_logged_in_user_counts_by_owner_not_by_address(base: int) -> None:
    from django.contrib.auth import get_user_model

    users = [get_user_model().objects.create_user(f"viewer{i}") for i in range(2)]
    clients = [Client(REMOTE_ADDR="198.51.100.1") for _ in range(3)]
    clients[0].force_login(users[0])
    clients[1].force_login(users[1])
    clients[2].force_login(users[0])
    session = running()
    with limits(MAX_STREAMS=base + 100, MAX_STREAMS_PER_CLIENT=1):
        first = clients[0].get(url("sse", session.session_id))
        second = clients[1].get(url("sse", session.session_id))  # another user, same address
        assert (first.status_code, second.status_code) == (200, 200)
        assert_client_busy(clients[2].get(url("sse", session.session_id)))  # user 0 again
        first.close()
        second.close()


@pytest.mark.parametrize(
    ("user", "address", "client"),
    [
        ("user:7", "192.0.2.1", "user:7"),
        (None, "192.0.2.1", "ip:192.0.2.1"),
        (None, "2001:db8:1:2:3:4:5:6", "ip:2001:db8:1:2::/64"),
        (None, "2001:db8:1:2:ffff::1", "ip:2001:db8:1:2::/64"),
        (None, "", "ip:unknown"),
        (None, "not an address", "ip:unknown"),
    ],
)
def test_who_a_stream_counts_against(user: str | None, address: str, client: str) -> None:
    assert stream_limits.client_of(user, address) == client


def test_the_asgi_default_cap_follows_what_a_process_serves() -> None:
    assert stream_limits.max_streams(asgi=True) == 500


def test_a_wsgi_stream_past_its_duration_asks_the_page_to_poll(base: int) -> None:
    session = running()
    with limits(WSGI_MAX_STREAM_DURATION=0.5, POLL_INTERVAL=0.05):
        started = time.monotonic()
        response = Client().get(url("sse", session.session_id), headers={"Last-Event-ID": "7"})
        chunks = [c.decode() for c in response.streaming_content]
    assert 0.5 <= time.monotonic() - started < 10
    heads = [sse.message_head(c) for c in chunks if c != sse.HEARTBEAT]
    assert heads[0][0] is None  # the progress message
    assert [event for event, _ in heads[-2:]] == [sse.POLL_EVENT, sse.DONE_EVENT]
    ids = [event_id for _, event_id in heads]
    assert all(i is not None for i in ids) and ids == sorted(set(ids))  # type: ignore[type-var]
    assert chunks[-2] == f"event: progress-poll\nid: {ids[-2]}\ndata: poll\n\n"
    assert stream_limits.open_streams() == base


def test_a_session_finishing_in_time_ends_with_done_alone(base: int) -> None:
    session = running()
    session.complete("a")
    with limits(WSGI_MAX_STREAM_DURATION=0.5):
        chunks = [c.decode() for c in Client().get(url("sse", session.session_id))]
    assert [sse.message_head(c)[0] for c in chunks][-2:] == [None, sse.DONE_EVENT]


async def test_asgi_streams_ignore_the_wsgi_duration(base: int, transactional_db: None) -> None:
    session = await sync_to_async(running)()
    with limits(WSGI_MAX_STREAM_DURATION=0.2, MAX_STREAM_DURATION=1.0, POLL_INTERVAL=0.05):
        started = time.monotonic()
        response = await AsyncClient().get(url("sse", session.session_id))
        chunks = [c.decode() async for c in response.streaming_content]
    # Ended by MAX_STREAM_DURATION, silently: the browser reconnects.
    assert time.monotonic() - started >= 1.0
    assert "data: " in chunks[0]
    assert {sse.message_head(c)[0] for c in chunks} == {None}


async def _messages(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


async def test_a_stream_cut_short_by_an_outage_is_not_told_to_poll() -> None:
    # It ended early (no done): the browser reconnects, as before.
    messages = _messages("id: 5\ndata: x\n\n")
    out = [m async for m in poll_after_max_duration(messages, 10.0)]
    assert out == ["id: 5\ndata: x\n\n"]


async def test_poll_ids_follow_the_last_message() -> None:
    messages = _messages("id: 99999999999999\ndata: x\n\n", sse.HEARTBEAT)
    out = [m async for m in poll_after_max_duration(messages, 0.0)]
    assert out[-2:] == [
        "event: progress-poll\nid: 100000000000000\ndata: poll\n\n",
        "event: done\nid: 100000000000001\ndata: done\n\n",
    ]


# -- real servers ----------------------------------------------------------------


def server_env(**ui: Any) -> dict[str, str]:
    # A fast heartbeat: a stream's server finds its client gone at the next write.
    return {
        "PROGRESS_TEST_CACHE": "redis",
        "PROGRESS_TEST_UI": json.dumps({"HEARTBEAT_INTERVAL": 0.3, **ui}),
    }


@pytest.fixture
def redis_cache(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[str]:
    require_redis()
    yield from _use_backend("redis", request)


def status_of(stream: RawStream) -> int:
    head = stream.read_until(b"\r\n\r\n", timeout=30).split(b"\r\n", 1)[0]
    return int(head.split()[1])


def open_streams(base: str, path: str, count: int) -> list[tuple[RawStream, int]]:
    """``count`` streams opened at once, each with its status. A refused one is
    closed once read, as a browser does (gunicorn's main thread waits up to 2 s
    for a client to close after a ``Connection: close`` answer)."""
    streams = [RawStream(base, path) for _ in range(count)]
    statuses = []
    for stream in streams:
        status = status_of(stream)
        if status != 200:
            # At once: while a refused client stays connected, gunicorn's main
            # thread serves the next ones late (32 refused, left open until the
            # end, kept the last one waiting more than 30 s).
            stream.close()
        statuses.append((stream, status))
    return statuses


def timed_get(base: str, path: str, timeout: float) -> tuple[int, float]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        conn.close()


def until_accepted(base: str, path: str, timeout: float = 15.0) -> RawStream:
    """A stream the server accepted, once it has a place again."""
    deadline = time.monotonic() + timeout
    while True:
        stream = RawStream(base, path)
        if status_of(stream) == 200:
            return stream
        stream.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"no stream accepted within {timeout}s")
        time.sleep(0.2)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_a_client_leaving_or_a_stream_ending_frees_its_place(kind: str, redis_cache: str) -> None:
    session = running()
    path = url("sse", session.session_id)
    with run_server(kind, env=server_env(MAX_STREAMS=2)) as live:
        held = open_streams(live, path, 2)
        assert [status for _, status in held] == [200, 200]
        busy = RawStream(live, path)
        reply = busy.read_until(b"\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503")
        assert f"retry-after: {stream_limits.RETRY_AFTER}\r\n".encode() in reply.lower()
        busy.close()

        held[0][0].close()  # the client goes away
        again = until_accepted(live, path)

        session.complete("a")  # both open streams end with done
        for stream in (held[1][0], again):
            stream.read_until(b"event: done")
            stream.close()
        # Both places are free again (a finished session's stream ends at once).
        fresh = running()
        streams = open_streams(live, url("sse", fresh.session_id), 2)
        assert [status for _, status in streams] == [200, 200]
        for stream, _ in streams:
            stream.close()


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.redis
def test_gunicorn_frees_the_place_of_a_silent_stream_soon_after_its_client_leaves(
    redis_cache: str,
) -> None:
    # Nothing to send (a pending session, changes pushed) and the default 15 s
    # heartbeat: no write would find the client gone for 15 s. The socket check
    # (hub_thread.client_probe) does within about a second.
    session = ProgressSession.create({"a": "A"})
    path = url("sse", session.session_id)
    env = {"PROGRESS_TEST_CACHE": "redis", "PROGRESS_TEST_UI": json.dumps({"MAX_STREAMS": 1})}
    with run_server("wsgi", env=env) as live:
        [(stream, status)] = open_streams(live, path, 1)
        assert status == 200
        stream.read_until(b"data: ")
        [(_, refused)] = open_streams(live, path, 1)
        assert refused == 503
        stream.close()
        left = time.monotonic()
        again = until_accepted(live, path, timeout=8)
        assert time.monotonic() - left < 8
        again.close()


FLOOD = 40
CAP = 8


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.redis
def test_a_flood_of_streams_leaves_gunicorn_answering_pages(redis_cache: str) -> None:
    session = running()
    path = url("sse", session.session_id)
    with run_server("wsgi", env=server_env(MAX_STREAMS=CAP)) as live:
        flood = open_streams(live, path, FLOOD)
        try:
            statuses = sorted(status for _, status in flood)
            assert statuses == [200] * CAP + [503] * (FLOOD - CAP)
            # An ordinary page (the component's fragment) and the JSON snapshot,
            # while CAP streams hold their threads: the issue measured 9 s.
            for name in ("fragment", "json"):
                status, took = timed_get(live, url(name, session.session_id), timeout=30)
                assert status == 200
                assert took < 2.0, f"{name} took {took:.1f}s"
        finally:
            for stream, _ in flood:
                stream.close()


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.redis
def test_without_the_cap_the_same_flood_starves_pages(redis_cache: str) -> None:
    # The contrast that shows the test above measures something: with more
    # streams than threads, nothing else is served until a stream ends.
    session = running()
    path = url("sse", session.session_id)
    with run_server("wsgi", env=server_env(MAX_STREAMS=1000)) as live:
        streams = [RawStream(live, path) for _ in range(WSGI_THREADS)]
        try:
            for stream in streams:
                assert status_of(stream) == 200  # every thread holds a stream
            with pytest.raises(TimeoutError):
                timed_get(live, url("json", session.session_id), timeout=3)
        finally:
            for stream in streams:
                stream.close()
