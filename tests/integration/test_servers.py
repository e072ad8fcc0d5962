"""Incremental delivery through real servers: gunicorn (WSGI, gthread) and uvicorn (ASGI).

The test process drives a session in a shared cache (Redis or files) while a raw
HTTP client reads the stream from the server process. Every event must arrive
while the task is still running: a server or view that buffered the response
would deliver nothing until the end (and these reads would time out).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from progress_ui import ProgressSession
from tests.conftest import _use_backend, require_redis
from tests.support.servers import run_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

#: Generous: 2 shared, noisy cores.
READ_TIMEOUT = 30.0

SERVERS = [("wsgi", "redis"), ("asgi", "redis"), ("wsgi", "file"), ("asgi", "file")]


@pytest.fixture(scope="module", params=SERVERS, ids=[f"{k}-{b}" for k, b in SERVERS])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    kind, cache = request.param
    if cache == "redis":
        require_redis()
    with run_server(kind, env={"PROGRESS_TEST_CACHE": cache}) as base:
        yield base, cache


@pytest.fixture
def live(server: tuple[str, str], request: pytest.FixtureRequest) -> Iterator[str]:
    """The server's base URL, with this process using the same cache."""
    base, cache = server
    for _ in _use_backend(cache, request):
        yield base


class RawStream:
    """A bare HTTP/1.1 GET over a socket, read as bytes arrive (no client-side
    buffering to hide a server's)."""

    def __init__(self, base: str, path: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=READ_TIMEOUT)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}Connection: close\r\n"
        self.sock.sendall(request.encode() + b"\r\n")
        self.buffer = b""

    def read_until(self, marker: bytes, timeout: float = READ_TIMEOUT) -> bytes:
        """Everything received so far once ``marker`` is in it."""
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{marker!r} not received in {timeout}s: {self.buffer!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                chunk = None
            if chunk is None:
                raise AssertionError(f"{marker!r} not received in {timeout}s: {self.buffer!r}")
            if not chunk:
                raise AssertionError(f"closed before {marker!r}: {self.buffer!r}")
            self.buffer += chunk
        return self.buffer

    def close(self) -> None:
        self.sock.close()


def running_session(percent: int) -> ProgressSession:
    session = ProgressSession.create({"build": "Build"})
    session.update("build", percent=percent)
    return session


def test_sse_events_arrive_while_the_task_runs(live: str) -> None:
    session = running_session(10)
    stream = RawStream(live, f"/progress/{session.session_id}/events/")
    try:
        head = stream.read_until(b"\r\n\r\n").split(b"\r\n\r\n")[0].decode().lower()
        assert head.startswith("http/1.1 200")
        assert "content-type: text/event-stream; charset=utf-8" in head
        assert "x-accel-buffering: no" in head
        assert "content-encoding" not in head

        stream.read_until(b"10%")
        # The first event is here and the task is still running: not buffered.
        assert session.to_dict()["status"] == "running"
        assert b"event: done" not in stream.buffer

        session.update("build", percent=60)
        stream.read_until(b"60%")
        assert b"event: done" not in stream.buffer

        session.complete("build")
        data = stream.read_until(b"data: done\n\n")
        assert b"100%" in data
    finally:
        stream.close()


def test_ndjson_lines_arrive_while_the_task_runs(live: str) -> None:
    session = running_session(20)
    stream = RawStream(live, f"/progress/{session.session_id}/stream/")
    try:
        stream.read_until(b'"percent":20')
        assert session.to_dict()["status"] == "running"
        session.update("build", percent=70)
        stream.read_until(b'"percent":70')
        session.complete("build")
        stream.read_until(b'"status":"complete"')
    finally:
        stream.close()


def test_reconnect_after_finish_gets_final_state_and_done(live: str) -> None:
    session = running_session(10)
    session.complete("build")
    time.sleep(0.4)  # past the completing animation
    stream = RawStream(
        live, f"/progress/{session.session_id}/events/", headers={"Last-Event-ID": "42"}
    )
    try:
        data = stream.read_until(b"data: done\n\n")
        assert data.startswith(b"HTTP/1.1 200")
        assert b"100%" in data
    finally:
        stream.close()


def test_json_and_404_through_the_server(live: str) -> None:
    session = running_session(30)
    parts = urlsplit(live)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=READ_TIMEOUT)
    try:
        conn.request("GET", f"/progress/{session.session_id}/json/")
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["tasks"]["build"]["percent"] == 30
        for path in ("A" * 32 + "/events/", "bad/events/", "A" * 32 + "/json/"):
            conn.request("GET", f"/progress/{path}")
            response = conn.getresponse()
            response.read()
            assert response.status == 404, path
    finally:
        conn.close()
