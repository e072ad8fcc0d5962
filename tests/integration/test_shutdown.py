"""Deploy-friendly shutdown (issue 21 P): SIGTERM to a real server serving open
streams ends every one of them within seconds with a reconnect hint (SSE: a bare
``retry:``; NDJSON: the retry line), well before the server's graceful timeout,
so a rolling restart moves viewers to another process."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from progress_ui import ProgressSession
from tests.conftest import _use_backend, require_redis
from tests.integration.test_servers import RawStream
from tests.support.servers import PIDS, run_server

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.redis]

#: The servers' graceful timeout: far longer than the streams may take to end.
GRACEFUL = 30
#: How soon after SIGTERM every client must have seen its stream end.
PROMPT = 5.0


@pytest.fixture
def redis_cache(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[str]:
    require_redis()
    yield from _use_backend("redis", request)


def body_of(raw: bytes) -> bytes:
    """The body of a raw HTTP/1.1 response, its chunked framing removed."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return rest
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2 :]
    return body


def read_to_end(stream: RawStream, deadline: float) -> bytes:
    """Everything the server sends until the response ends (its last chunk, or
    the connection closed); then the client closes, as a browser does (gunicorn
    lingers up to 2 s after its last byte for the client to close first)."""
    try:
        while not stream.buffer.endswith(b"\r\n0\r\n\r\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"still open: {stream.buffer[-300:]!r}")
            stream.sock.settimeout(remaining)
            try:
                chunk = stream.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            stream.buffer += chunk
        return stream.buffer
    finally:
        stream.close()


def exited(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"  # gone, not yet reaped by run_server


@pytest.mark.parametrize(("kind", "each"), [("asgi", 6), ("wsgi", 2)])
def test_sigterm_ends_every_stream_at_once_with_a_reconnect_hint(
    kind: str, each: int, redis_cache: str
) -> None:
    sessions = [ProgressSession.create({"a": "A", "b": "B"}) for _ in range(each)]
    for session in sessions:
        session.update("a", percent=20)
    paths = [f"/progress/{s.session_id}/events/" for s in sessions]
    paths += [f"/progress/{s.session_id}/stream/" for s in sessions]
    group = "&".join(f"session={s.session_id}" for s in sessions)
    paths += [f"/progress/events/?{group}"] * each
    env = {
        "PROGRESS_TEST_CACHE": "redis",
        "PROGRESS_TEST_UI": json.dumps({"MAX_STREAMS": 200, "MAX_STREAMS_PER_CLIENT": 0}),
    }
    with run_server(kind, env=env, graceful_timeout=GRACEFUL) as live:
        pid = PIDS[live]
        streams = [RawStream(live, path) for path in paths]
        try:
            for stream, path in zip(streams, paths, strict=True):
                assert stream.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 200")
                # Open, and its first message is there.
                stream.read_until(b'"percent":20' if "/stream/" in path else b"20%")
            os.kill(pid, signal.SIGTERM)
            stopped = time.monotonic()
            bodies = [body_of(read_to_end(s, stopped + PROMPT)) for s in streams]
            took = time.monotonic() - stopped
            deadline = stopped + PROMPT
            while not exited(pid):
                assert time.monotonic() < deadline, "the server is still running"
                time.sleep(0.05)
        finally:
            for stream in streams:
                stream.close()
    assert took < PROMPT
    for path, body in zip(paths, bodies, strict=True):
        text = body.decode()
        if "/stream/" in path:
            assert text.endswith('{"retry":2000}\n'), text[-200:]
        else:
            # A bare retry: then the end; no done, so the browser reconnects.
            assert text.endswith("\n\nretry: 2000\n\n"), text[-200:]
            assert "event: done" not in text
