"""Hostile requests against every endpoint of ``progress_ui.urls``, through real servers:
gunicorn (WSGI, gthread) and uvicorn (ASGI), sharing this process's Redis cache and
SQLite test database (users and Django sessions).

Whatever is sent (malformed, overlong, unicode or path-traversal ids, hostile
``Last-Event-ID`` headers, wrong methods, junk and huge query strings, missing CSRF
tokens, a stranger's cookie):

- never a 5xx, never a traceback or a Python repr in the body;
- a missing, a malformed and a foreign id get the same answer: status, body and
  headers (but ``Date`` and ``Content-Length``), for every endpoint, method and cookie;
- the streams of a finished session end by themselves.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from progress_ui import ProgressSession
from progress_ui.engine import store as progress_store
from tests.conftest import _use_backend, require_redis
from tests.support.servers import run_server

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

#: Seconds for any one request (2 shared, noisy cores).
TIMEOUT = 20.0
ENDPOINTS = ["events", "stream", "json", "html", "cancel"]
STREAMS = ["events", "stream"]
#: Headers that may differ between two answers to the same question.
#: (``Expires`` is set to the time of the answer by ``never_cache``.)
VOLATILE_HEADERS = {"date", "content-length", "expires"}
#: What a body must never show.
LEAKS = re.compile(
    rb"Traceback \(most recent|File \"|object at 0x|Exception Value|Internal Server Error"
    rb"|(Key|Value|Type|Attribute|Runtime)Error|progress_ui\.(store|session)|django\.\w+\.\w+"
)
#: Malformed ids that still reach the views (no ``/``): they must read as missing.
MALFORMED_IDS = [
    "bad",
    "A" * 31,
    "A" * 33,
    "A" * 31 + "=",
    "A" * 31 + "!",
    "A" * 2000,
    "é" * 32,
    "\U0001f600" * 8,
    "\uff21" * 32,  # fullwidth A
    "..",
    "...",
    "%2e%2e",
    "A" * 31 + "\x00",
    "A" * 16 + "\r\nX-Injected: 1",
    "' OR 1=1--",
    "<script>alert(1)<\\script>",
    "{{7*7}}",
    "${jndi:ldap:\\x}",
    "A" * 32 + " ",
    " " + "A" * 31,
    "A" * 32 + "\n",
]
#: Path traversal and ids with ``/``: never routed to the views; a plain 404.
TRAVERSAL_PATHS = [
    "/progress/../../etc/passwd/json/",
    "/progress/..%2F..%2Fetc%2Fpasswd/json/",
    "/progress/%2e%2e/%2e%2e/settings/json/",
    "/progress/" + "A" * 32 + "/../json/",
    "/progress//json/",
    "/progress/" + "A" * 32 + "/json/../../admin/",
    "/progress/" + "A" * 32,
    "/progress/" + "A" * 32 + "/nope/",
    "/progress/" + "A" * 32 + "/json/extra/",
    "/progress/%3Cscript%3Ealert(1)%3C%2Fscript%3E/json/",
    "/progress/%24%7Bjndi%3Aldap%3A%2F%2Fx%7D/json/",
]
HOSTILE_LAST_EVENT_IDS = [
    "",
    "-1",
    "0",
    "1e9",
    "0x10",
    " 5",
    "NaN",
    "9" * 30,
    "9" * 3000,
    "18446744073709551616",
    "\u0661\u0662",  # Arabic-Indic digits
    "<script>",
    "1\x00",
]


# -- raw HTTP -------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    ended: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def comparable(self) -> tuple[int, bytes, list[tuple[str, str]]]:
        """Status, body and headers (but the volatile ones), in a stable order."""
        headers = sorted(
            (k.lower(), v) for k, v in self.headers if k.lower() not in VOLATILE_HEADERS
        )
        return self.status, self.body, headers


def send(
    base: str,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    read_for: float | None = None,
    until: bytes | None = None,
) -> Answer | None:
    """One request on a fresh connection. Reads the whole body, except that a 200
    stream is read for ``read_for`` seconds only when given (``ended`` tells whether
    it ended by itself), or until ``until`` arrives. None when the server closed the
    connection without an answer (what a server may do with a request it refuses)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value.encode("utf-8"))
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        try:
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        streaming = response.status == 200 and (
            response.getheader("Content-Type") or ""
        ).startswith(("text/event-stream", "application/x-ndjson"))
        data, ended = b"", True
        if streaming and read_for is not None:
            deadline = time.monotonic() + read_for
            ended = False
            while time.monotonic() < deadline:
                conn.sock.settimeout(max(0.05, deadline - time.monotonic()))  # type: ignore[union-attr]
                try:
                    chunk = response.read1(65536)
                except TimeoutError:
                    break
                if not chunk:
                    ended = True
                    break
                data += chunk
                if until is not None and until in data:
                    break
        else:
            data = response.read()
        return Answer(response.status, response.reason, response.getheaders(), data, ended)
    finally:
        conn.close()


def check_safe(answer: Answer | None, what: str) -> None:
    """Never a 5xx; never a traceback or a Python repr in the body."""
    if answer is None:
        return
    assert answer.status < 500, f"{what}: {answer.status} {answer.body[:2000]!r}"
    assert not LEAKS.search(answer.body), f"{what}: leaks {answer.body[:2000]!r}"


def path_for(session_id: str, endpoint: str) -> str:
    return f"/progress/{quote(session_id, safe='')}/{endpoint}/"


def csrf_headers(cookie: str = "") -> dict[str, str]:
    token = secrets.token_hex(16)  # 32 characters: an unmasked secret is a valid token
    jar = f"csrftoken={token}" + (f"; {cookie}" if cookie else "")
    return {"Cookie": jar, "X-CSRFToken": token}


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def server(request: pytest.FixtureRequest, django_db_setup: None) -> Iterator[str]:
    require_redis()
    # Requests come faster than a server notices their clients leave: no cap on
    # streams here (its 503 is tested in tests/integration/test_stream_limits.py).
    env = {"PROGRESS_TEST_CACHE": "redis", "PROGRESS_TEST_UI": '{"MAX_STREAMS": 10000}'}
    with run_server(request.param, env=env) as base:
        yield base


@pytest.fixture
def base(server: str, request: pytest.FixtureRequest, transactional_db: None) -> Iterator[str]:
    for _ in _use_backend("redis", request):
        yield server


@dataclass
class Visitors:
    """Sessions owned by a browser (Django session) and by a user, with the cookies
    of their owners and of strangers."""

    browser_owned: str
    browser_cookie: str
    user_owned: str
    user_cookie: str
    stranger_browser_cookie: str
    stranger_user_cookie: str


def start_owned(base: str) -> tuple[str, str]:
    """A session created by the server for a new anonymous visitor: (id, cookie)."""
    answer = send(base, "GET", "/tests-start-owned/")
    assert answer is not None and answer.status == 200, answer
    cookie = answer.header("Set-Cookie") or ""
    match = re.search(r"sessionid=([^;]+)", cookie)
    assert match, answer.headers
    return answer.body.decode(), f"sessionid={match.group(1)}"


def login_cookie(username: str) -> tuple[int, str]:
    user = get_user_model().objects.create_user(username, password=secrets.token_hex(8))
    client = Client()
    client.force_login(user)
    return user.pk, f"sessionid={client.cookies['sessionid'].value}"


@pytest.fixture
def visitors(base: str) -> Visitors:
    browser_owned, browser_cookie = start_owned(base)
    _, stranger_browser_cookie = start_owned(base)
    alice, alice_cookie = login_cookie("alice")
    _, bob_cookie = login_cookie("bob")
    user_owned = ProgressSession.create({"a": "A"}, owner=f"user:{alice}").session_id
    for session_id in (browser_owned, user_owned):
        session = ProgressSession.get(session_id)
        assert session is not None
        session.update("a", percent=30, message="working")
    return Visitors(
        browser_owned,
        browser_cookie,
        user_owned,
        alice_cookie,
        stranger_browser_cookie,
        bob_cookie,
    )


def missing_id() -> str:
    return secrets.token_urlsafe(24)


# -- tests ----------------------------------------------------------------------------------------


def test_owners_read_their_sessions(base: str, visitors: Visitors) -> None:
    """The baseline the 404 tests compare with: owners get 200 everywhere."""
    for session_id, cookie in (
        (visitors.browser_owned, visitors.browser_cookie),
        (visitors.user_owned, visitors.user_cookie),
    ):
        for endpoint in ("json", "html"):
            answer = send(base, "GET", path_for(session_id, endpoint), headers={"Cookie": cookie})
            assert answer is not None and answer.status == 200, (endpoint, answer)
            check_safe(answer, endpoint)
        snap = json.loads(
            send(base, "GET", path_for(session_id, "json"), headers={"Cookie": cookie}).body  # type: ignore[union-attr]
        )
        assert snap["tasks"]["a"]["percent"] == 30
        for endpoint in STREAMS:
            answer = send(
                base,
                "GET",
                path_for(session_id, endpoint),
                headers={"Cookie": cookie},
                read_for=TIMEOUT,
                until=b"30",
            )
            assert answer is not None and answer.status == 200, (endpoint, answer)
            assert b"30" in answer.body, answer.body
            check_safe(answer, endpoint)


def _cookie_contexts(visitors: Visitors) -> dict[str, str]:
    return {
        "no cookie": "",
        "stranger browser": visitors.stranger_browser_cookie,
        "stranger user": visitors.stranger_user_cookie,
        "garbage cookie": "sessionid=" + "x" * 40,
        "absurd cookie": "sessionid=" + "\u00e9" * 100 + "; other=" + "\U0001f600",
    }


#: (method, body, with a valid CSRF token)
REQUEST_KINDS = [
    ("GET", None, False),
    ("POST", b"", False),
    ("POST", b"", True),
    ("PUT", b"x", True),
    ("DELETE", None, False),
]


def test_missing_malformed_and_foreign_ids_get_the_same_answer(
    base: str, visitors: Visitors
) -> None:
    """For every endpoint, method and cookie: the answer about a missing id is the
    answer about a malformed one and about someone else's session."""
    foreign = [visitors.browser_owned, visitors.user_owned]
    failures: list[str] = []
    cases = []
    for context, cookie in _cookie_contexts(visitors).items():
        everything = context == "no cookie"
        kinds = (
            [*REQUEST_KINDS, ("HEAD", None, False), ("PATCH", b"", True)]
            if everything
            else REQUEST_KINDS
        )
        ids = [*(MALFORMED_IDS if everything else MALFORMED_IDS[::5]), *foreign]
        cases += [(context, cookie, kind, ids) for kind in kinds]
    for context, cookie, (method, body, with_csrf), ids in cases:
        for endpoint in ENDPOINTS:
            headers = csrf_headers(cookie) if with_csrf else ({"Cookie": cookie} if cookie else {})
            what = f"{method} {endpoint} ({context}, csrf={with_csrf})"
            reference = send(
                base, method, path_for(missing_id(), endpoint), headers=headers, body=body
            )
            check_safe(reference, what)
            assert reference is not None, what
            assert reference.status in (400, 403, 404, 405), f"{what}: {reference}"
            for session_id in ids:
                answer = send(
                    base,
                    method,
                    path_for(session_id, endpoint),
                    headers=headers,
                    body=body,
                    read_for=0.5,
                )
                check_safe(answer, f"{what} {session_id!r}")
                if answer is None or answer.comparable() != reference.comparable():
                    failures.append(
                        f"{what} id {session_id[:40]!r}: "
                        f"{answer and answer.comparable()} != {reference.comparable()}"
                    )
    assert failures == [], "\n".join(failures[:20]) + f"\n({len(failures)} in all)"
    # Nobody but the owners could cancel.
    for session_id in foreign:
        snap = ProgressSession.get(session_id).to_dict()  # type: ignore[union-attr]
        assert snap["status"] == "running", snap


def test_not_found_is_private_and_plain(base: str, visitors: Visitors) -> None:
    answer = send(base, "GET", path_for(missing_id(), "json"))
    assert answer is not None and answer.status == 404
    assert "no-store" in (answer.header("Cache-Control") or ""), answer.headers
    assert "cookie" in (answer.header("Vary") or "").lower(), answer.headers
    assert (answer.header("Content-Type") or "").startswith("text/plain"), answer.headers


def test_paths_that_never_reach_a_view(base: str) -> None:
    for path in TRAVERSAL_PATHS:
        for method in ("GET", "POST"):
            answer = send(base, method, path)
            check_safe(answer, f"{method} {path}")
            assert answer is None or answer.status in (400, 403, 404), (path, answer)
            assert answer is None or b"root:" not in answer.body


def test_wrong_methods_on_a_readable_session(base: str, visitors: Visitors) -> None:
    session_id, cookie = visitors.browser_owned, visitors.browser_cookie
    expected = {
        ("GET", "cancel"): 405,
        **{("POST", e): 405 for e in ("events", "stream", "json", "html")},
        **{("PUT", e): 405 for e in ENDPOINTS},
        **{("DELETE", e): 405 for e in ENDPOINTS},
        **{("PATCH", e): 405 for e in ENDPOINTS},
        **{("TRACE", e): 405 for e in ENDPOINTS},
    }
    for (method, endpoint), status in expected.items():
        headers = csrf_headers(cookie) if method not in ("GET", "TRACE") else {"Cookie": cookie}
        answer = send(base, method, path_for(session_id, endpoint), headers=headers, body=b"")
        check_safe(answer, f"{method} {endpoint}")
        assert answer is not None and answer.status == status, (method, endpoint, answer)
        allow = (answer.header("Allow") or "").upper()
        assert method not in allow, (method, endpoint, allow)
        # Without a CSRF token, unsafe methods are refused before anything else.
        if method != "GET" and method != "TRACE":
            answer = send(
                base, method, path_for(session_id, endpoint), headers={"Cookie": cookie}, body=b""
            )
            check_safe(answer, f"{method} {endpoint} no csrf")
            assert answer is not None and answer.status == 403, (method, endpoint, answer)
    assert ProgressSession.get(session_id).to_dict()["status"] == "running"  # type: ignore[union-attr]


def test_cancel_needs_csrf_and_ownership(base: str, visitors: Visitors) -> None:
    session_id, cookie = visitors.browser_owned, visitors.browser_cookie
    path = path_for(session_id, "cancel")
    for headers in (
        {"Cookie": cookie},  # no CSRF at all
        {"Cookie": f"csrftoken={'a' * 32}; {cookie}", "X-CSRFToken": "b" * 32},  # mismatch
        {"Cookie": f"csrftoken={'a' * 32}; {cookie}", "X-CSRFToken": "\u00e9" * 32},
        {"Cookie": cookie, "X-CSRFToken": "a" * 32},  # no cookie to match
    ):
        answer = send(base, "POST", path, headers=headers, body=b"")
        check_safe(answer, f"cancel {headers}")
        assert answer is not None and answer.status == 403, (headers, answer)
    for stranger in (visitors.stranger_browser_cookie, visitors.stranger_user_cookie, ""):
        answer = send(base, "POST", path, headers=csrf_headers(stranger), body=b"")
        check_safe(answer, f"cancel by {stranger!r}")
        assert answer is not None and answer.status == 404, (stranger, answer)
    assert ProgressSession.get(session_id).to_dict()["status"] == "running"  # type: ignore[union-attr]
    # A hostile next= is ignored, the owner's cancel goes through.
    for next_url in ("https://evil.example/", "//evil.example/", "javascript:alert(1)", "\\\\evil"):
        body = f"next={quote(next_url)}".encode()
        headers = {**csrf_headers(cookie), "Content-Type": "application/x-www-form-urlencoded"}
        answer = send(base, "POST", path, headers=headers, body=body)
        check_safe(answer, f"cancel next={next_url!r}")
        assert answer is not None and answer.status == 200, (next_url, answer)
        assert answer.header("Location") is None
        assert json.loads(answer.body)["status"] == "cancelled"


def test_hostile_last_event_ids(base: str, visitors: Visitors) -> None:
    running = ProgressSession.create({"a": "A"})
    running.update("a", percent=40)
    finished = ProgressSession.create({"a": "A"})
    finished.error("a", "it broke")
    for value in HOSTILE_LAST_EVENT_IDS:
        for session in (running, finished):
            answer = send(
                base,
                "GET",
                path_for(session.session_id, "events"),
                headers={"Last-Event-ID": value},
                read_for=TIMEOUT,
                until=b"40%" if session is running else None,
            )
            what = (
                f"Last-Event-ID {value[:40]!r} ({'running' if session is running else 'finished'})"
            )
            check_safe(answer, what)
            if answer is None or answer.status != 200:
                # A header a server refuses to parse (a NUL byte, say): refused, not crashed.
                assert answer is None or answer.status in (400, 431), (what, answer)
                continue
            ids = [int(m) for m in re.findall(rb"^id: (\d+)$", answer.body, re.M)]
            assert ids, (what, answer.body[:500])
            assert ids == sorted(ids) and all(0 < i < 10**20 for i in ids), (what, ids)
            if session is finished:
                assert answer.ended and b"data: done" in answer.body, (what, answer.body[-500:])
            else:
                assert b"40%" in answer.body, (what, answer.body[:500])


def test_query_string_junk(base: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=25)
    queries = [
        "?transport=poll",
        "?transport=",
        "?transport=%00",
        "?transport=<script>alert(1)</script>",
        "?transport=%C0%AF",
        "?transport=" + quote("\U0001f600" * 50),
        "?transport=poll&transport=sse",
        "?transport[]=poll",
        "?%ZZ=%ZZ",
        "?" + "a" * 3000,
        "?" + "&".join(f"k{i}=v" for i in range(400)),
        "?" + "a&" * 1100,  # past DATA_UPLOAD_MAX_NUMBER_FIELDS (1000)
    ]
    for endpoint in ("json", "html", "events", "stream"):
        for query in queries:
            answer = send(
                base,
                "GET",
                path_for(session.session_id, endpoint) + query,
                read_for=TIMEOUT,
                until=b"25",
            )
            what = f"{endpoint}{query[:60]}"
            check_safe(answer, what)
            assert answer is not None and answer.status in (200, 400), (what, answer)
            assert b"<script>alert" not in answer.body, what
    # Far past any request line limit: refused (or dropped), never a 5xx.
    answer = send(base, "GET", path_for(session.session_id, "json") + "?" + "q" * 70000)
    check_safe(answer, "huge query")


def test_overlong_ids_are_refused_without_a_5xx(base: str) -> None:
    for length in (5000, 70000):
        answer = send(base, "GET", path_for("A" * length, "json"))
        check_safe(answer, f"id of {length}")
        assert answer is None or answer.status in (400, 404, 414), answer


@pytest.mark.parametrize("ending", ["complete", "error", "cancel"])
def test_streams_of_a_finished_session_end(base: str, ending: str) -> None:
    session = ProgressSession.create({"a": "A", "b": "B"})
    session.update("a", percent=50)
    session.complete("b")
    if ending == "complete":
        session.complete("a")
    elif ending == "error":
        session.error("a", "it broke")
    else:
        session.cancel()
    time.sleep(0.5)  # past the completing animation
    for endpoint in STREAMS:
        started = time.monotonic()
        answer = send(base, "GET", path_for(session.session_id, endpoint), read_for=TIMEOUT)
        assert answer is not None and answer.status == 200, (endpoint, answer)
        check_safe(answer, endpoint)
        assert answer.ended, f"{endpoint} of a finished session still open: {answer.body[-500:]!r}"
        assert time.monotonic() - started < TIMEOUT
        if endpoint == "events":
            assert b"data: done" in answer.body, answer.body[-500:]
        else:
            last = json.loads(answer.body.strip().splitlines()[-1])
            expected = {"complete": "complete", "error": "error", "cancel": "cancelled"}[ending]
            assert last["status"] == expected, last
    assert progress_store.read_task(session.session_id, "a") is not None
