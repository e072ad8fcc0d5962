"""Progress never breaks the job: a Redis server of the test's own, stopped or
paused mid-run. Jobs finish with their results; streams pause and resume."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from progress_ui import ProgressSession
from progress_ui.store import CacheUnavailable
from tests.workers import WorkerProcess, kill_process, start_process, stop_process

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int) -> WorkerProcess:
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no"]
    return start_process(argv, ready="Ready to accept connections")


@pytest.fixture
def private_redis() -> Iterator[dict[str, Any]]:
    """A Redis server on a free port, used as the progress cache; stopped by PID."""
    port = free_port()
    server = start_redis(port)
    alias = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    state: dict[str, Any] = {"server": server, "port": port}
    with override_settings(
        CACHES={**settings.CACHES, "private": alias},
        PROGRESS_UI={"CACHE_ALIAS": "private", "COMPLETING_DURATION": 0.0, "POLL_INTERVAL": 0.05},
    ):
        try:
            yield state
        finally:
            stop_process(state["server"])


def test_jobs_finish_with_their_results_when_redis_stops_mid_job(
    private_redis: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    session = ProgressSession.create({f"job{i}": f"Job {i}" for i in range(6)})
    stop_after = threading.Event()

    def work(n: int) -> int:
        total = 0
        for step in session.iterate(f"job{n}", range(20), complete=False):
            session.update(f"job{n}", message=f"step {step}")
            total += step
            if n == 2 and step == 10:
                stop_after.set()
                kill_process(private_redis["server"])  # Redis is gone for good
            time.sleep(0.005)
        return total

    with caplog.at_level(logging.WARNING, logger="progress_ui"):
        results = [session.add_sequential(f"job{n}", work, n).result for n in range(6)]
    assert stop_after.is_set()
    assert results == [sum(range(20))] * 6
    lost = [r for r in caplog.records if "was not saved" in r.getMessage()]
    assert 1 <= len(lost) <= 2  # rate-limited: one warning per 10 s, not one per write


def test_parallel_jobs_finish_too(private_redis: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    session = ProgressSession.create({"a": "A", "b": "B"})
    kill_process(private_redis["server"])
    with ThreadPoolExecutor(2) as pool:
        tasks = [session.add_parallel(t, pool.submit(lambda: 41 + 1)) for t in ("a", "b")]
        assert [t.wait(10) for t in tasks] == [42, 42]


def test_strict_writes_raise(private_redis: dict[str, Any]) -> None:
    session = ProgressSession.create({"a": "A"})
    kill_process(private_redis["server"])
    strict = {"CACHE_ALIAS": "private", "STRICT_WRITES": True}
    with override_settings(PROGRESS_UI=strict), pytest.raises(CacheUnavailable):
        session.update("a", percent=10)


@pytest.mark.django_db
def test_streams_pause_during_an_outage_and_resume_after_it(
    private_redis: dict[str, Any],
) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=30)
    url = f"/progress/{session.session_id}/events/"
    server: WorkerProcess = private_redis["server"]
    client = Client()
    response = client.get(url)
    chunks = iter(response.streaming_content)
    assert b"30%" in next(chunks)
    os.kill(server.pid, signal.SIGSTOP)  # a network partition: Redis stops answering
    try:
        rest = b"".join(chunks).decode()  # the stream ends by itself...
        assert "event: done" not in rest  # ...without done: the browser reconnects
        assert "progress-error" not in rest
        reconnect = client.get(url)
        assert reconnect.status_code == 503  # no traceback, try again soon
        assert reconnect["Retry-After"] == "2"
        assert b"Traceback" not in reconnect.content
    finally:
        os.kill(server.pid, signal.SIGCONT)
    session.complete("a")
    text = b"".join(client.get(url).streaming_content).decode()
    assert re.search(r"event: done\nid: \d+\ndata: done\n\n\Z", text)
    assert "100%" in text
