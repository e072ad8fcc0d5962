"""Several sessions over one SSE stream: the ``progress_ui:group_sse`` endpoint
(``GroupSSEView``, ``progress_ui.streaming.group_stream``), its access rules and limits,
what each message holds and when ``done`` comes, the markup that shares one
connection (``render_group``, ``{% progress_group %}``, ``<c-progress.group>``),
and delivery through real servers."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import caches
from django.template import TemplateSyntaxError, engines
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import reverse
from django_cotton.compiler_regex import CottonCompiler

from progress_ui import ProgressSession, views
from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.engine.session import ProgressSession as _Session
from progress_ui.engine.store import CacheUnavailable
from progress_ui.render.components import group_url, render_group, render_session
from progress_ui.render.display import region_id
from progress_ui.streaming.group_stream import group_stream
from tests.conftest import _use_backend, require_redis
from tests.integration.test_servers import READ_TIMEOUT, RawStream
from tests.support.servers import run_server
from tests.support.streams import sync_group

DONE = "event: done\n"


@pytest.fixture
def fast(locmem: str) -> Iterator[str]:
    with override_settings(
        PROGRESS_UI={"CACHE_ALIAS": locmem, "COMPLETING_DURATION": 0, "MAX_GROUP_SESSIONS": 4}
    ):
        yield locmem


def path(*ids: str) -> str:
    return group_url(ids)


def body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return str(response.content.decode())


def messages(text: str) -> list[str]:
    return [m for m in text.split("\n\n") if m]


def payload(message: str) -> str:
    """The data of one message, lines joined as EventSource joins them."""
    return "\n".join(
        line.removeprefix("data: ") for line in message.split("\n") if line.startswith("data: ")
    )


def finished(**kwargs: Any) -> ProgressSession:
    session = ProgressSession.create({"a": "Alpha", "b": "Beta"}, **kwargs)
    session.complete("a")
    session.complete("b")
    return session


def running(percent: int = 10) -> ProgressSession:
    session = ProgressSession.create({"build": "Build"})
    session.update("build", percent=percent)
    return session


def sessions_in(message: str, candidates: list[ProgressSession]) -> set[str]:
    return {s.session_id for s in candidates if f"progress-{s.session_id}-" in message}


def each_once(found: list[str], candidates: list[ProgressSession]) -> bool:
    """True when each message concerns one session, a different one each time."""
    seen = [sessions_in(m, candidates) for m in found]
    return all(len(s) == 1 for s in seen) and {sid for s in seen for sid in s} == {
        c.session_id for c in candidates
    }


class Quick(views.GroupSSEView):
    poll_interval = 0.01


# -- URL and headers -------------------------------------------------------------------


def test_url_name_and_path() -> None:
    assert reverse("progress_ui:group_sse") == "/progress/events/"
    assert path("a", "b") == "/progress/events/?session=a&session=b"


def test_finished_sessions_get_their_final_state_then_one_done_under_wsgi(fast: str) -> None:
    one, two = finished(), finished()
    response = Client().get(path(one.session_id, two.session_id))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    assert set(response["Cache-Control"].split(", ")) >= {"private", "no-store", "no-cache"}
    assert response["Vary"] == "Cookie"
    assert response["X-Accel-Buffering"] == "no"
    assert response.streaming and not response.is_async
    found = messages(body(response))
    # One unnamed message per session (in either order), each holding only that
    # session's regions, all of them.
    assert each_once(found[:2], [one, two])
    assert all(m.startswith("id: ") for m in found[:2])
    assert "\nretry: " in found[0] and "\nretry: " not in found[1]
    for session in (one, two):
        assert region_id(session.session_id, "task:b") in "".join(found[:2])
    assert len(found) == 3 and found[2].startswith(DONE)
    ids = [int(n) for n in re.findall(r"^id: (\d+)$", "\n".join(found), re.M)]
    assert ids == sorted(ids) and len(set(ids)) == 3


async def test_finished_sessions_under_asgi(fast: str) -> None:
    one, two = await sync_to_async(finished)(), await sync_to_async(finished)()
    response: Any = await AsyncClient().get(path(one.session_id, two.session_id))
    assert response.status_code == 200
    assert response.is_async
    text = "".join([c.decode() async for c in response.streaming_content])
    found = messages(text)
    assert each_once(found[:2], [one, two])
    assert len(found) == 3 and found[2].startswith(DONE)


def test_only_get(fast: str) -> None:
    assert Client().post(path(finished().session_id)).status_code == 405


# -- access: the same 404 as a missing id ------------------------------------------------


def _browser() -> tuple[Client, SessionStore]:
    store = SessionStore()
    store.create()
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key or ""
    return client, store


@pytest.mark.django_db
def test_one_foreign_session_makes_the_whole_group_404(fast: str) -> None:
    owner, store = _browser()
    request = RequestFactory().get("/")
    request.session = store
    request.user = AnonymousUser()
    mine = finished(request=request)
    owner.cookies[settings.SESSION_COOKIE_NAME] = store.session_key or ""
    stranger, _ = _browser()
    open_one = finished()  # no owner: readable with its id
    assert owner.get(path(open_one.session_id, mine.session_id)).status_code == 200
    refused = stranger.get(path(open_one.session_id, mine.session_id))
    unknown = stranger.get(path(open_one.session_id, "C" * 32))
    single = stranger.get(reverse("progress_ui:sse", args=[mine.session_id]))
    assert refused.status_code == unknown.status_code == single.status_code == 404
    # Nothing tells a stranger's id from a missing one: same body, same headers.
    assert refused.content == unknown.content == single.content
    for name in ("Content-Type", "Cache-Control", "Vary"):
        assert refused[name] == unknown[name], name


def test_unknown_and_expired_ids_are_404(fast: str) -> None:
    good, gone = finished(), finished()
    gone.delete()
    assert Client().get(path(good.session_id, gone.session_id)).status_code == 404
    assert Client().get(path("A" * 32)).status_code == 404


@pytest.mark.parametrize("bad", ["short", "!" * 32, "a" * 33, "..%2F..%2Fetc", "a" * 31 + "\u00e9"])
def test_a_malformed_id_is_404_before_any_cache_read(
    fast: str, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = finished()
    keys: list[str] = []
    cls = type(caches[fast])
    original = cls.get

    def spy(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        keys.append(key)
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(cls, "get", spy)
    # The good id comes first: it is still not read.
    assert Client().get(path(good.session_id, bad)).status_code == 404
    assert keys == []


# -- bad requests ------------------------------------------------------------------------


def test_no_ids_is_400_with_a_clear_message(fast: str) -> None:
    for query in ("", "?other=1", "?sessions=x"):
        response = Client().get(reverse("progress_ui:group_sse") + query)
        assert response.status_code == 400, query
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        assert response.content.decode() == (
            "Name 1 to 4 progress sessions: ?session=<id>&session=<id>"
        )
        assert "private" in response["Cache-Control"]


def test_too_many_ids_is_400_before_any_cache_read(
    fast: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [finished().session_id for _ in range(5)]
    reads: list[str] = []
    monkeypatch.setattr(
        _Session,
        "get",
        classmethod(lambda cls, sid: reads.append(sid)),  # type: ignore[arg-type]
    )
    response = Client().get(path(*ids))
    assert response.status_code == 400
    assert b"Name 1 to 4 progress sessions" in response.content
    assert reads == []


def test_repeated_ids_count_once(fast: str) -> None:
    one, two = finished(), finished()
    ids = [one.session_id, two.session_id] * 3  # 6 ids, 2 sessions: within the limit of 4
    found = messages(body(Client().get(path(*ids))))
    assert len(found) == 3 and found[2].startswith(DONE)


def test_the_limit_is_a_setting(fast: str) -> None:
    ids = [finished().session_id for _ in range(5)]
    assert Client().get(path(*ids)).status_code == 400
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": fast, "MAX_GROUP_SESSIONS": 5}):
        assert Client().get(path(*ids)).status_code == 200


# -- what comes, and when done comes ---------------------------------------------------------


def _assert_done_after_all(one: ProgressSession, two: ProgressSession, chunks: list[str]) -> None:
    """``chunks`` read while ``two`` ran (before ``one`` settled), then the rest."""
    text = "".join(chunks)
    found = messages(text)
    assert found[-1].startswith(DONE)
    assert text.count(DONE) == 1
    # Every later message concerns the one session that changed.
    for message in found[2:-1]:
        if message.startswith("id: "):
            assert len(sessions_in(message, [one, two])) == 1, message
    finals = [m for m in found if "All 1 task complete" in payload(m) or "100%" in payload(m)]
    assert {s for m in finals for s in sessions_in(m, [one, two])} == {
        one.session_id,
        two.session_id,
    }


def test_done_only_once_every_session_has_settled_under_wsgi(fast: str) -> None:
    one, two = running(10), running(20)
    request = RequestFactory().get(path(one.session_id, two.session_id))
    response = async_to_sync(Quick.as_view())(request)
    chunks = iter(response.streaming_content)
    first = [next(chunks).decode(), next(chunks).decode()]
    assert each_once(first, [one, two])
    two.complete("build")
    seen = list(first)
    while "100%" not in seen[-1]:
        seen.append(next(chunks).decode())
    # One session settled, the other runs: no done yet.
    assert sessions_in(seen[-1], [one, two]) == {two.session_id}
    timer = threading.Timer(0.2, one.complete, args=("build",))
    timer.start()
    seen += [c.decode() for c in chunks]
    timer.join()
    assert DONE not in "".join(seen[:-1])
    _assert_done_after_all(one, two, seen)


async def test_done_only_once_every_session_has_settled_under_asgi(fast: str) -> None:
    one, two = await sync_to_async(running)(10), await sync_to_async(running)(20)
    response: Any = await AsyncClient().get(path(one.session_id, two.session_id))
    stream = aiter(response.streaming_content)
    seen = [(await anext(stream)).decode(), (await anext(stream)).decode()]
    assert each_once(seen, [one, two])
    await sync_to_async(two.complete)("build")
    while "100%" not in seen[-1]:
        seen.append((await asyncio.wait_for(anext(stream), 10)).decode())
    assert sessions_in(seen[-1], [one, two]) == {two.session_id}
    await sync_to_async(one.update)("build", percent=55)
    while "55%" not in seen[-1]:
        seen.append((await asyncio.wait_for(anext(stream), 10)).decode())
    await sync_to_async(one.complete)("build")
    async for chunk in stream:
        seen.append(chunk.decode())
    assert DONE not in "".join(seen[:-1])
    _assert_done_after_all(one, two, seen)


def test_a_change_sends_only_that_sessions_changed_regions(fast: str) -> None:
    one = ProgressSession.create({"x": "X", "y": "Y"})
    one.update("x", percent=10)
    two = running(30)
    stream = sync_group([one, two], poll_interval=0.01)
    first = [next(stream), next(stream)]
    # Full state first (the two sessions' pollers publish in either order).
    assert any(region_id(one.session_id, "task:y") in message for message in first)
    one.update("x", percent=70)
    change = next(stream)
    assert sessions_in(change, [one, two]) == {one.session_id}
    assert region_id(one.session_id, "task:x") in change
    assert region_id(one.session_id, "task:y") not in change  # unchanged bar not re-sent
    assert "70%" in change
    stream.close()


def test_hostile_task_names_and_messages_are_escaped(fast: str) -> None:
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    one = ProgressSession.create({"a": evil})
    one.update("a", percent=5, message="line one\r\nevent: done\n\ndata: <b>x</b>")
    one.complete("a")
    two = finished()
    text = body(Client().get(path(one.session_id, two.session_id)))
    assert "<script>" not in text and "<img" not in text and "<b>x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    # A newline in user text cannot end a message early or forge an event.
    assert [line for line in text.split("\n") if line.startswith("event:")] == ["event: done"]
    for message in messages(text):
        for line in message.split("\n"):
            assert re.match(r"(id|retry|event|data): ", line), line


# -- heartbeats, limits, failures ------------------------------------------------------------


def test_one_heartbeat_for_the_group_when_idle(fast: str) -> None:
    sessions = [running(10) for _ in range(4)]
    with override_settings(
        PROGRESS_UI={"CACHE_ALIAS": fast, "HEARTBEAT_INTERVAL": 0.1, "MAX_STREAM_DURATION": 60}
    ):
        stream = sync_group(sessions, poll_interval=0.02)
        for _ in sessions:
            assert next(stream).startswith("id: ")
        started = time.monotonic()
        pings = [next(stream) for _ in range(3)]
        elapsed = time.monotonic() - started
        stream.close()
    assert pings == [": ping\n\n"] * 3
    # One per interval for the whole group, not one per session (4 would come at once).
    assert elapsed >= 0.2


def test_max_duration_ends_without_done(fast: str) -> None:
    one, two = running(10), finished()
    text = "".join(sync_group([one, two], poll_interval=0.02, max_duration=0.3))
    assert len(sessions_in(text, [one, two])) == 2
    assert DONE not in text  # the browser reconnects and gets the full state again


def test_wsgi_view_asks_the_page_to_poll_past_its_limit(fast: str) -> None:
    one = running(10)
    with override_settings(
        PROGRESS_UI={"CACHE_ALIAS": fast, "WSGI_MAX_STREAM_DURATION": 0.3, "POLL_INTERVAL": 0.02}
    ):
        text = body(Client().get(path(one.session_id)))
    found = messages(text)
    assert found[-2].startswith("event: progress-poll\n")
    assert found[-1].startswith(DONE)


def test_a_failure_is_logged_and_the_client_gets_the_safe_error(
    fast: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(views.GroupSSEView):
        def render_partials(self, snapshot: SessionSnapshot) -> str:
            raise KeyError("internal key name")

    one, two = finished(), finished()
    response = async_to_sync(Broken.as_view())(
        RequestFactory().get(path(one.session_id, two.session_id))
    )
    text = body(response)
    assert "event: progress-error\n" in text and "data: Something went wrong.\n" in text
    assert "internal key name" not in text
    assert text.endswith("data: done\n\n")
    assert any(r.name == "progress_ui" and r.exc_info for r in caplog.records)


def test_cache_unavailable_just_ends_the_stream(fast: str, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = running(10), running(20)
    stream = sync_group([one, two], poll_interval=0.02)
    assert next(stream).startswith("id: ")

    def down(*args: Any, **kwargs: Any) -> Any:
        raise CacheUnavailable("cache down")

    async def adown(*args: Any, **kwargs: Any) -> Any:
        raise CacheUnavailable("cache down")

    monkeypatch.setattr(_Session, "read", down)
    monkeypatch.setattr(_Session, "aread_state", adown)
    monkeypatch.setattr(_Session, "amark_lost_workers", adown)
    rest = "".join(stream)
    assert "progress-error" not in rest and DONE not in rest  # the browser reconnects


async def test_closing_the_stream_leaves_the_hub(fast: str) -> None:
    from progress_ui.streaming.hub import get_hub

    sessions = [await sync_to_async(running)(p) for p in (10, 20, 30)]
    stream = group_stream(sessions, poll_interval=0.01)
    for _ in sessions:
        assert (await anext(stream)).startswith("id: ")
    assert get_hub().viewers == 3
    await stream.aclose()  # type: ignore[attr-defined]
    assert get_hub().viewers == 0 and get_hub().sessions == 0


# -- markup ------------------------------------------------------------------------------------

CONNECT_2 = 'hx-ext="sse" sse-connect="{url}" sse-swap="message" hx-swap="none" sse-close="done"'
CONNECT_4 = 'hx-sse:connect="{url}" hx-swap="none" hx-sse:close="done"'


def render(source: str, context: dict[str, object] | None = None, cotton: bool = False) -> str:
    if cotton:
        source = CottonCompiler().process(source)
    return engines["django"].from_string(source).render(context or {})


def connections(html: str) -> int:
    return html.count("sse-connect=") + html.count("hx-sse:connect=")


@pytest.mark.parametrize("htmx", [2, 4])
def test_render_group_opens_one_connection_for_the_running_sessions(fast: str, htmx: int) -> None:
    live = [running(10 * n) for n in range(1, 4)]
    done = finished()
    html = str(render_group([live[0], done, *live[1:]], htmx=htmx))
    url = path(*(s.session_id for s in live)).replace("&", "&amp;")
    wrapper = html.split(">", 1)[0]
    assert wrapper.startswith('<div class="pui-group" data-progress-group ')
    assert (CONNECT_4 if htmx == 4 else CONNECT_2).format(url=url) in wrapper
    assert connections(html) == 1
    assert html.count('class="pui-session"') == 4
    # Each running component still names its polling URL (the fallback).
    for session in live:
        assert f"/progress/{session.session_id}/html/?transport=poll" in html
    assert done.session_id not in wrapper  # nothing to follow


def test_a_group_of_finished_sessions_connects_to_nothing(fast: str) -> None:
    html = str(render_group([finished(), finished()]))
    assert connections(html) == 0 and "data-progress-group" in html


def test_an_empty_group_renders_nothing(fast: str) -> None:
    assert render_group([]) == ""
    html = render("{% load progress_ui %}{% progress_group items %} {% endprogress_group %}", {})
    assert html == ""


def test_running_sessions_beyond_the_limit_keep_their_own_connection(fast: str) -> None:
    live = [running(10) for _ in range(6)]  # MAX_GROUP_SESSIONS is 4 here
    html = str(render_group(live))
    assert connections(html) == 3  # the group's, and one each for the last two
    assert path(*(s.session_id for s in live[:4])).replace("&", "&amp;") in html
    assert f'sse-connect="/progress/{live[5].session_id}/events/"' in html


def test_group_tag_with_an_empty_body_renders_every_component(fast: str) -> None:
    one, two = running(10), running(20)
    html = render(
        "{% load progress_ui %}{% progress_group items htmx=4 %}{% endprogress_group %}",
        {"items": [("First <job>", one), ("Second", two)]},
    )
    assert connections(html) == 1 and "hx-sse:connect" in html
    assert render_session(one, title="First <job>", htmx=4, transport="group") in html
    assert "First &lt;job&gt;" in html


def test_group_tag_body_lays_out_the_components(fast: str) -> None:
    one, two, alone = running(10), running(20), running(30)
    html = render(
        "{% load progress_ui %}{% progress_group items %}"
        '{% for s in items %}<article class="card">{% progress_session s title="T" %}</article>'
        "{% endfor %}{% progress_session alone %}{% endprogress_group %}"
        "{% progress_session one %}",
        {"items": [one, two], "alone": alone, "one": one},
    )
    assert html.count('<article class="card">') == 2
    # The group's connection, and one for the session that is not in the group
    # (inside the body) and one for the component outside the tag.
    assert connections(html) == 3
    assert html.count(f'sse-connect="/progress/{one.session_id}/events/"') == 1
    assert f'sse-connect="/progress/{alone.session_id}/events/"' in html


def test_cotton_group_component(fast: str) -> None:
    one, two = running(10), running(20)
    html = render(
        '<c-progress.group :sessions="items" htmx="4" cancellable="1" />',
        {"items": [one, two]},
        cotton=True,
    )
    assert html.strip() == render_group([one, two], htmx=4, cancellable=True)
    assert connections(html) == 1 and html.count("pui-cancel__button") == 2


@pytest.mark.parametrize(
    "source",
    [
        "{% progress_group %}{% endprogress_group %}",
        "{% progress_group items colour=1 %}{% endprogress_group %}",
        "{% progress_group items stray %}{% endprogress_group %}",
    ],
)
def test_group_tag_syntax_errors_say_how_to_use_it(source: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=r"Usage: \{% progress_group sessions"):
        render("{% load progress_ui %}" + source)


# -- real servers --------------------------------------------------------------------------------

SERVERS = ["wsgi", "asgi"]


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    require_redis()
    with run_server(request.param, env={"PROGRESS_TEST_CACHE": "redis"}) as base:
        yield base


@pytest.fixture
def live(server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    for _ in _use_backend("redis", request):
        yield server


@pytest.mark.server
@pytest.mark.slow
def test_one_connection_follows_several_sessions_through_a_real_server(live: str) -> None:
    sessions = [running(10 + n) for n in range(3)]
    stream = RawStream(live, path(*(s.session_id for s in sessions)))
    try:
        head = stream.read_until(b"\r\n\r\n").split(b"\r\n\r\n")[0].decode().lower()
        assert head.startswith("http/1.1 200")
        assert "content-type: text/event-stream; charset=utf-8" in head
        for n in range(3):
            stream.read_until(f"{10 + n}%".encode())
        # Changes arrive while the others still run: nothing is buffered.
        sessions[1].update("build", percent=64)
        stream.read_until(b"64%")
        assert b"event: done" not in stream.buffer
        for session in sessions[:2]:
            session.complete("build")
        time.sleep(0.5)
        assert b"event: done" not in stream.buffer
        sessions[2].complete("build")
        data = stream.read_until(b"data: done\n\n", timeout=READ_TIMEOUT).decode()
        tail = data.split("\r\n\r\n", 1)[1]
        assert tail.count("event: done") == 1
        for session in sessions:
            assert session.session_id in tail
    finally:
        stream.close()


@pytest.mark.server
@pytest.mark.slow
def test_a_foreign_or_missing_id_is_404_through_a_real_server(live: str) -> None:
    good = running(10)
    for query in (path(good.session_id, "A" * 32), path(good.session_id, "bad")):
        stream = RawStream(live, query)
        try:
            head = stream.read_until(b"\r\n\r\n").decode()
            assert head.startswith("HTTP/1.1 404"), head
        finally:
            stream.close()
