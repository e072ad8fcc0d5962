"""The HTTP endpoints: SSE, NDJSON, JSON and HTML fragment, access control and headers."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import caches
from django.db import connections
from django.http import Http404, HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import reverse

from progress_ui import ProgressSession, views
from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.render.display import region_id

NAMES = ["sse", "ndjson", "json", "fragment"]
STREAMS = ["sse", "ndjson"]
BIG_ID = "99999999999999"


@pytest.fixture
def fast(locmem: str) -> Iterator[str]:
    with override_settings(
        PROGRESS_UI={"CACHE_ALIAS": locmem, "COMPLETING_DURATION": 0, "SSE_RETRY_MS": 1500}
    ):
        yield locmem


def url(name: str, session_id: str) -> str:
    return reverse(f"progress_ui:{name}", kwargs={"session_id": session_id})


def body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return str(response.content.decode())


def finished_session(**kwargs: Any) -> ProgressSession:
    session = ProgressSession.create({"a": "Alpha", "b": "Beta"}, **kwargs)
    session.complete("a")
    session.complete("b")
    return session


# -- URLs ------------------------------------------------------------------------


def test_url_names_and_paths() -> None:
    sid = "x" * 32
    assert url("sse", sid) == f"/progress/{sid}/events/"
    assert url("ndjson", sid) == f"/progress/{sid}/stream/"
    assert url("json", sid) == f"/progress/{sid}/json/"
    assert url("fragment", sid) == f"/progress/{sid}/html/"


# -- SSE -------------------------------------------------------------------------


def test_sse_headers_and_sync_stream_under_wsgi(fast: str) -> None:
    session = finished_session()
    response = Client().get(url("sse", session.session_id))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    # Owner-dependent: never stored by a shared cache.
    assert set(response["Cache-Control"].split(", ")) >= {"private", "no-store", "no-cache"}
    assert response["Vary"] == "Cookie"
    assert response["X-Accel-Buffering"] == "no"
    assert not response.has_header("Content-Encoding")
    assert response.streaming and not response.is_async  # sync generator for WSGI
    text = body(response)
    assert text.startswith("id: ")
    assert "\nretry: 1500\n" in text
    assert region_id(session.session_id, "task:a") in text
    # The last message is exactly the closing one.
    assert re.search(r"\n\nevent: done\nid: \d+\ndata: done\n\n\Z", text)


async def test_sse_async_stream_under_asgi(fast: str) -> None:
    session = await sync_to_async(finished_session)()
    response: Any = await AsyncClient().get(url("sse", session.session_id))
    assert response.status_code == 200
    assert response.is_async  # async generator for ASGI: no buffering
    text = "".join([c.decode() async for c in response.streaming_content])
    assert "data: done\n\n" in text
    assert region_id(session.session_id, "summary") in text


def test_sse_is_never_gzipped(fast: str) -> None:
    session = finished_session()
    middleware = ["django.middleware.gzip.GZipMiddleware", *settings.MIDDLEWARE]
    with override_settings(MIDDLEWARE=middleware):
        client = Client(headers={"Accept-Encoding": "gzip, deflate"})
        for name in STREAMS:
            response = client.get(url(name, session.session_id))
            assert not response.has_header("Content-Encoding"), name
            assert body(response)
        # Control: the middleware is active and compresses the HTML fragment.
        assert client.get(url("fragment", session.session_id))["Content-Encoding"] == "gzip"


@pytest.mark.parametrize("client_cls", [Client, AsyncClient], ids=["wsgi", "asgi"])
async def test_reconnect_with_last_event_id_gets_full_state_at_once(
    fast: str, client_cls: Any, transactional_db: None
) -> None:
    # transactional_db: closing the response sends request_finished, which checks
    # any DB connection an earlier test left open in asgiref's executor thread.
    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    await sync_to_async(session.update)("a", percent=40, message="step 2")
    # Per request: AsyncClient(headers=...) does not reach ASGI scope headers.
    client, headers = client_cls(), {"Last-Event-ID": BIG_ID}
    if client_cls is Client:
        response = await sync_to_async(client.get)(url("sse", session.session_id), headers=headers)
        first = await sync_to_async(next)(iter(response.streaming_content))
        await sync_to_async(response.close)()
    else:
        response = await client.get(url("sse", session.session_id), headers=headers)
        first = await anext(aiter(response.streaming_content))
        await response.streaming_content.aclose()  # type: ignore[attr-defined]
    text = first.decode()
    assert text.startswith("id: 100000000000000\nretry: 1500\ndata: ")
    assert "step 2" in text and "40%" in text


@pytest.mark.parametrize("garbage", ["abc", "-5", "1.5", "9" * 40])
def test_garbage_last_event_id_is_ignored(fast: str, garbage: str) -> None:
    session = finished_session()
    before = int(time.time() * 1000)
    response = Client(headers={"Last-Event-ID": garbage}).get(url("sse", session.session_id))
    assert response.status_code == 200
    first_id = int(body(response).split("\n", 1)[0].removeprefix("id: "))
    assert before <= first_id <= int(time.time() * 1000) + 1


def test_reconnect_to_finished_session_gets_final_state_and_done(fast: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.error("a", "It broke <b>badly</b>")
    response = Client(headers={"Last-Event-ID": "123"}).get(url("sse", session.session_id))
    assert response.status_code == 200
    text = body(response)
    messages = text[:-2].split("\n\n")
    assert len(messages) == 2
    assert "It broke &lt;b&gt;badly&lt;/b&gt;" in messages[0]
    assert messages[1].startswith("event: done\n")


def test_sse_streams_live_changes_under_wsgi(fast: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=5)

    class Quick(views.SSEView):
        poll_interval = 0.01

    request = RequestFactory().get("/")
    response = async_to_sync(Quick.as_view())(request, session_id=session.session_id)
    chunks = iter(response.streaming_content)
    assert b"5%" in next(chunks)
    timer = threading.Timer(0.2, session.complete, args=("a",))
    timer.start()
    rest = b"".join(chunks).decode()
    timer.join()
    assert "100%" in rest
    assert rest.endswith("data: done\n\n")


def test_stream_failure_is_logged_and_client_gets_safe_error(
    fast: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(views.SSEView):
        def render_partials(self, snapshot: SessionSnapshot) -> str:
            raise KeyError("internal key name")

    session = finished_session()
    response = async_to_sync(Broken.as_view())(
        RequestFactory().get("/"), session_id=session.session_id
    )
    text = body(response)
    assert "event: progress-error\n" in text
    assert "data: Something went wrong.\n" in text
    assert "internal key name" not in text
    assert text.endswith("data: done\n\n")
    assert any(r.name == "progress_ui" and r.exc_info for r in caplog.records)


def test_subclass_hooks(fast: str) -> None:
    class Custom(views.SSEView):
        session_url_kwarg = "pk"
        stream_headers = {"Cache-Control": "no-cache", "X-Custom": "1"}

        def render_partials(self, snapshot: SessionSnapshot) -> str:
            return f"{snapshot['status']}!"

    session = finished_session()
    response = async_to_sync(Custom.as_view())(RequestFactory().get("/"), pk=session.session_id)
    assert response["X-Custom"] == "1"
    assert "data: complete!\n" in body(response)


def test_sse_rejects_other_methods(fast: str) -> None:
    session = finished_session()
    assert Client().post(url("sse", session.session_id)).status_code == 405


# -- NDJSON and JSON ---------------------------------------------------------------


def test_ndjson_stream_until_complete(fast: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", current=1, total=4)
    response = Client().get(url("ndjson", session.session_id))
    assert response["Content-Type"] == "application/x-ndjson"
    # Owner-dependent: never stored by a shared cache.
    assert set(response["Cache-Control"].split(", ")) >= {"private", "no-store", "no-cache"}
    assert response["Vary"] == "Cookie"
    chunks = iter(response.streaming_content)
    first = json.loads(next(chunks))
    assert first["tasks"]["a"]["current"] == 1
    assert first["status"] == "running"
    timer = threading.Timer(0.2, session.complete, args=("a",))
    timer.start()
    lines = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
    timer.join()
    assert lines[-1]["status"] == "complete"
    assert lines[-1]["overall_percent"] == 100


async def test_ndjson_async_under_asgi(fast: str) -> None:
    session = await sync_to_async(finished_session)()
    response: Any = await AsyncClient().get(url("ndjson", session.session_id))
    assert response.is_async
    text = "".join([c.decode() async for c in response.streaming_content])
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines == [await sync_to_async(session.to_dict)()]


def test_json_snapshot_is_never_cached(fast: str) -> None:
    session = ProgressSession.create({"a": "A <b>"})
    session.update("a", percent=30, message="half <i>way</i>")
    response = Client().get(url("json", session.session_id))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    cache_control = response["Cache-Control"]
    for part in ("no-cache", "no-store", "must-revalidate", "max-age=0"):
        assert part in cache_control
    data = response.json()
    assert data == session.to_dict()
    assert data["tasks"]["a"]["message"] == "half <i>way</i>"


def test_fragment_renders_the_component(fast: str) -> None:
    session = ProgressSession.create({"a": "<script>x</script>"})
    response = Client().get(url("fragment", session.session_id))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert region_id(session.session_id, "task:a") in html
    assert url("sse", session.session_id) in html
    assert "<script>x</script>" not in html


# -- 404s: malformed, unknown, expired, foreign ---------------------------------------

MALFORMED = [
    "short",
    "a" * 31,
    "a" * 33,
    "!" * 32,
    "a" * 31 + ".",
    "x" * 500,
    "..%2F..%2Fetc%2Fpasswd",
    "a" * 31 + "\u00e9",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("session_id", MALFORMED)
def test_malformed_ids_are_404_without_touching_the_cache(
    fast: str, name: str, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list[str] = []
    cls = type(caches[fast])
    original_get = cls.get

    def spy(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        keys.append(key)
        return original_get(self, key, *args, **kwargs)

    monkeypatch.setattr(cls, "get", spy)
    path = f"/progress/{session_id}/" + url(name, "x" * 32).rsplit("/", 2)[-2] + "/"
    assert Client().get(path).status_code == 404
    assert keys == []


@pytest.mark.parametrize("name", NAMES)
def test_unknown_and_expired_ids_are_404(fast: str, name: str) -> None:
    assert Client().get(url(name, "A" * 32)).status_code == 404
    session = finished_session()
    session.delete()
    assert Client().get(url(name, session.session_id)).status_code == 404


async def test_unknown_id_is_404_under_asgi(fast: str) -> None:
    for name in NAMES:
        response: Any = await AsyncClient().get(url(name, "B" * 32))
        assert response.status_code == 404


def _browser_session() -> tuple[Client, SessionStore]:
    store = SessionStore()
    store.create()
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key or ""
    return client, store


@pytest.mark.django_db
def test_anonymous_owner_reads_and_other_browsers_get_404(fast: str) -> None:
    owner_client, store = _browser_session()
    request = RequestFactory().get("/")
    request.session = store
    request.user = AnonymousUser()
    session = finished_session(request=request)
    # Making the owner secret rotated the session key (fixation defence): the
    # browser follows it, as SessionMiddleware's cookie would make it.
    owner_client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key or ""
    stranger, _ = _browser_session()
    for name in NAMES:
        assert owner_client.get(url(name, session.session_id)).status_code == 200, name
        assert stranger.get(url(name, session.session_id)).status_code == 404, name
        assert Client().get(url(name, session.session_id)).status_code == 404, name


@pytest.mark.django_db
def test_user_owner_reads_and_other_users_get_404(fast: str) -> None:
    alice = User.objects.create_user("alice", password="x")
    bob = User.objects.create_user("bob", password="x")
    request = RequestFactory().get("/")
    request.user = alice
    session = finished_session(request=request)
    as_alice, as_bob = Client(), Client()
    as_alice.force_login(alice)
    as_bob.force_login(bob)
    for name in NAMES:
        assert as_alice.get(url(name, session.session_id)).status_code == 200, name
        response = as_bob.get(url(name, session.session_id))
        assert response.status_code == 404, name
        # Same answer as for an id that never existed: no existence oracle.
        unknown = as_bob.get(url(name, "C" * 32))
        assert response.content == unknown.content


@pytest.mark.django_db
def test_permission_function_setting_opens_access(fast: str) -> None:
    request = RequestFactory().get("/")
    request.user = User.objects.create_user("carol", password="x")
    session = finished_session(request=request)
    assert Client().get(url("json", session.session_id)).status_code == 404
    with override_settings(
        PROGRESS_UI={
            "CACHE_ALIAS": fast,
            "PERMISSION_FUNCTION": "tests.integration.test_views.allow_all",
        }
    ):
        assert Client().get(url("json", session.session_id)).status_code == 200


def allow_all(request: Any, session: ProgressSession) -> bool:
    return True


# -- the async access path (stream views under ASGI) ------------------------------


async def astatus(client: AsyncClient, name: str, session_id: str) -> int:
    """The status of a stream (read to its end: these sessions have finished)."""
    response: Any = await client.get(url(name, session_id))
    if getattr(response, "streaming", False):
        async for _ in response.streaming_content:
            pass
    return int(response.status_code)


@pytest.mark.parametrize("name", ["sse", "ndjson"])
async def test_asgi_streams_apply_the_owner_rule(
    fast: str, name: str, transactional_db: None
) -> None:
    alice = await User.objects.acreate_user("alice", password="x")
    bob = await User.objects.acreate_user("bob", password="x")
    request = RequestFactory().get("/")
    request.user = alice
    session = await sync_to_async(finished_session)(request=request)
    as_alice, as_bob = AsyncClient(), AsyncClient()
    await as_alice.aforce_login(alice)
    await as_bob.aforce_login(bob)
    assert await astatus(as_alice, name, session.session_id) == 200
    assert await astatus(as_bob, name, session.session_id) == 404
    assert await astatus(AsyncClient(), name, session.session_id) == 404


async def test_asgi_streams_know_the_browser_that_owns_a_session(
    fast: str, transactional_db: None
) -> None:
    _, store = await sync_to_async(_browser_session)()
    request = RequestFactory().get("/")
    request.session = store
    request.user = AnonymousUser()
    session = await sync_to_async(finished_session)(request=request)
    as_owner = AsyncClient()
    as_owner.cookies[settings.SESSION_COOKIE_NAME] = store.session_key or ""
    stranger, _ = await sync_to_async(_browser_session)()
    as_stranger = AsyncClient()
    as_stranger.cookies = stranger.cookies
    for name in ("sse", "ndjson"):
        assert await astatus(as_owner, name, session.session_id) == 200, name
        assert await astatus(as_stranger, name, session.session_id) == 404, name


async def test_asgi_streams_call_a_permission_function_of_your_own(
    fast: str, transactional_db: None
) -> None:
    request = RequestFactory().get("/")
    request.user = await User.objects.acreate_user("carol", password="x")
    session = await sync_to_async(finished_session)(request=request)
    assert await astatus(AsyncClient(), "sse", session.session_id) == 404
    with override_settings(
        PROGRESS_UI={
            "CACHE_ALIAS": fast,
            "PERMISSION_FUNCTION": "tests.integration.test_views.allow_all",
        }
    ):
        assert await astatus(AsyncClient(), "sse", session.session_id) == 200


@pytest.mark.django_db
def test_stream_views_serve_a_project_with_atomic_requests(
    fast: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Django refuses async views under ATOMIC_REQUESTS unless they opt out.
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    session = finished_session()
    for name in ("sse", "ndjson"):
        response = Client().get(url(name, session.session_id))
        assert response.status_code == 200, name
        assert body(response)


def test_get_progress_session_hook_can_narrow(fast: str) -> None:
    class OnlyAlpha(views.JSONView):
        def get_progress_session(self) -> ProgressSession:
            session = super().get_progress_session()
            if "a" not in session.tasks:
                raise Http404("no")
            return session

    good = finished_session()
    other = ProgressSession.create({"z": "Z"})
    view = OnlyAlpha.as_view()
    response = view(RequestFactory().get("/"), session_id=good.session_id)
    assert isinstance(response, HttpResponse) and response.status_code == 200
    with pytest.raises(Http404):
        view(RequestFactory().get("/"), session_id=other.session_id)


def test_fragment_names_its_polling_url_while_running_and_polls_without_sse(fast: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.start("a")
    client = Client()
    page = client.get(url("fragment", session.session_id)).content.decode()
    poll_url = f"/progress/{session.session_id}/html/?transport=poll"
    assert f'data-progress-poll="{poll_url}"' in page
    assert "sse-connect=" in page
    polled = client.get(poll_url).content.decode()
    assert f'data-progress-poll="{poll_url}"' in polled
    assert "sse-connect=" not in polled and "hx-sse:connect" not in polled
    session.complete("a")
    final = client.get(poll_url).content.decode()
    assert "data-progress-poll" not in final  # finished: the poller stops
