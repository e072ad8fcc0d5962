"""What an open SSE stream holds in a real uvicorn server: no OS thread and no
Redis connection of its own (``progress_ui.streaming.threads.release_stream_threads``,
which ``tests.support.asgi`` applies; ``store.cache``)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from progress_ui import ProgressSession
from tests.conftest import _use_backend
from tests.support.servers import PIDS, run_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]

STREAMS = 80


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("Threads:"))
    return int(line.split()[1])


def redis_sockets(pid: int, port: int) -> int:
    """TCP connections of process ``pid`` to port ``port`` (from /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].rpartition(":")[2], 16) == port:
            inodes.add(fields[9])
    found = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            found += 1
    return found


@pytest.fixture
def asgi(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[str]:
    # One client opens every stream here: lift the per-client share (40 places)
    # so that what is measured is the process, not the cap.
    ui = json.dumps({"MAX_STREAMS_PER_CLIENT": 0})
    for _alias in _use_backend("redis", request):
        with run_server(
            "asgi", env={"PROGRESS_TEST_CACHE": "redis", "PROGRESS_TEST_UI": ui}
        ) as base:
            yield base


def test_open_streams_hold_no_thread_and_no_redis_connection(asgi: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=5)
    pid = PIDS[asgi]
    redis_port = urlsplit(settings.REDIS_URL).port or 6379
    parts = urlsplit(asgi)
    path = f"/progress/{session.session_id}/events/"

    def open_stream() -> socket.socket:
        sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        return sock

    def first_message(sock: socket.socket) -> bytes:
        data = b""
        while b"\n\n" not in data.partition(b"\r\n\r\n")[2]:
            chunk = sock.recv(65536)
            assert chunk, "stream closed"
            data += chunk
        return data

    warm = open_stream()  # the first stream starts the hub and its connections
    assert b"200 OK" in first_message(warm)
    threads_before, redis_before = threads(pid), redis_sockets(pid, redis_port)
    socks: list[socket.socket] = []
    try:
        # One after another: what is measured is what an open stream keeps, not
        # the Redis pool a burst of concurrent lookups grows (it keeps its
        # connections for the next burst).
        for _ in range(STREAMS):
            socks.append(open_stream())
            assert b"200 OK" in first_message(socks[-1])
        time.sleep(0.5)  # released threads finish exiting
        # Without the release each stream kept a thread (and a Redis
        # connection): +80 of each here.
        assert threads(pid) <= threads_before + 8, (threads_before, threads(pid))
        assert redis_sockets(pid, redis_port) <= redis_before + 8
    finally:
        for sock in [warm, *socks]:
            sock.close()
        session.delete()
