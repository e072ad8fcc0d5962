"""Progress never breaks the job: a Redis server of the test's own, stopped or
paused mid-run. Jobs finish with their results; streams pause and resume."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client, override_settings

from progress_ui import ProgressSession
from progress_ui.engine import liveness
from progress_ui.engine.store import CacheUnavailable
from tests.support.workers import WorkerProcess, kill_process, start_process, stop_process

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int, *, append_only_dir: Path | None = None) -> WorkerProcess:
    """A redis-server on ``port``; with ``append_only_dir``, one that keeps every
    write in an append-only file there (fsync each), so a restart brings it back."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    if append_only_dir is None:
        argv += ["--appendonly", "no"]
    else:
        argv += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(append_only_dir)]
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


# -- the end of a task reaches the store once it is back (issue 21 H) ---------------------


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout:.0f}s")
        time.sleep(0.05)


def task_status(session_id: str, task_id: str) -> str | None:
    try:
        session = ProgressSession.get(session_id)
        return None if session is None else session.to_dict()["tasks"][task_id]["status"]
    except CacheUnavailable:
        return None


def test_an_ending_lost_in_an_outage_is_stored_once_redis_is_back(tmp_path: Path) -> None:
    """Redis with an append-only file stops while a job ends, and comes back with
    the job "running 60 %": the process that ran it stores its ending then, and
    holds no claim on it (so it never renews the session)."""
    port = free_port()
    server = start_redis(port, append_only_dir=tmp_path)
    alias = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    ui = {
        "CACHE_ALIAS": "aof",
        "COMPLETING_DURATION": 0.0,
        "WORKER_BEAT_INTERVAL": 0.3,
        "WORKER_STALE_TIMEOUT": 0.6,
    }
    try:
        with override_settings(CACHES={**settings.CACHES, "aof": alias}, PROGRESS_UI=ui):
            session = ProgressSession.create({"a": "Import", "b": "Report"})
            session.update("a", percent=60)
            session.update("b", percent=10)
            stop_process(server)  # the append-only file keeps "running 60 %"
            session.complete("a")  # lost: the job goes on regardless
            server = start_redis(port, append_only_dir=tmp_path)
            wait_until(lambda: task_status(session.session_id, "a") == "complete", 10, "stored")
            assert (session.session_id, "a") not in liveness.held_claims()
            wait_until(lambda: not liveness.pending_endings(), 5, "given up")
            assert (session.session_id, "b") in liveness.held_claims()  # b still runs here
            session.error("b", "failed")
            assert liveness.held_claims() & {(session.session_id, "b")} == set()
    finally:
        stop_process(server)


def test_a_session_redis_lost_is_stored_again_with_its_true_durations() -> None:
    """Redis restarts empty (no persistence) while two tasks run (issue 21 M): the
    ending that one reached during the outage, and the next update of the other,
    store the session again, each task with the start time, counts and total its
    writer knows, so durations ("took 17 seconds" for a 30 s job) stay true."""
    port = free_port()
    server = start_redis(port)
    alias = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    ui = {
        "CACHE_ALIAS": "empty",
        "COMPLETING_DURATION": 0.0,
        "WORKER_BEAT_INTERVAL": 0.3,
        "WORKER_STALE_TIMEOUT": 0.6,
    }
    try:
        with override_settings(CACHES={**settings.CACHES, "empty": alias}, PROGRESS_UI=ui):
            session = ProgressSession.create({"a": "Import", "b": "Report"})
            session.update("a", current=2, total=10)
            session.update("b", percent=50)
            before = session.to_dict()["tasks"]
            started = {t: before[t]["started_at"] for t in ("a", "b")}
            raw = redis.Redis.from_url(alias["LOCATION"])
            raw.set("sentinel", b"1")
            time.sleep(1.0)  # the tasks have run a while
            stop_process(server)
            session.complete("b")  # lost: kept by this process
            server = start_redis(port)  # back, and empty
            # The sentinel shows the restart lost everything; the session itself
            # may already be back, stored by the liveness thread's retry of the
            # kept ending (every WORKER_BEAT_INTERVAL), so it is not the witness.
            assert raw.get("sentinel") is None
            raw.close()
            # The kept ending stores the session again...
            wait_until(lambda: task_status(session.session_id, "b") == "complete", 10, "stored")
            # ...and so does the next write of the running task.
            session.update("a", current=5)
            running = session.to_dict()["tasks"]["a"]
            assert (running["status"], running["current"], running["total"]) == (
                "running",
                5,
                10,
            )
            session.complete("a")
            tasks = session.to_dict()["tasks"]
    finally:
        stop_process(server)
    for task_id in ("a", "b"):
        task = tasks[task_id]
        assert task["status"] == "complete"
        assert task["started_at"] == started[task_id]  # not when it was stored again
        ran = (task["finished_at"] or 0.0) - (task["started_at"] or 0.0)
        assert ran >= 1.0  # how long it really ran


def test_an_ending_lost_in_a_freeze_is_stored_after_it(private_redis: dict[str, Any]) -> None:
    """Redis frozen (SIGSTOP) while a job ends: its ending times out, is kept, and
    is stored once Redis answers again."""
    ui = {
        "CACHE_ALIAS": "private",
        "COMPLETING_DURATION": 0.0,
        "WORKER_BEAT_INTERVAL": 0.3,
        "WORKER_STALE_TIMEOUT": 0.6,
    }
    with override_settings(PROGRESS_UI=ui):
        session = ProgressSession.create({"a": "A"})
        session.update("a", percent=30)
        server: WorkerProcess = private_redis["server"]
        os.kill(server.pid, signal.SIGSTOP)  # frozen: writes time out
        try:
            session.complete("a")
        finally:
            os.kill(server.pid, signal.SIGCONT)
        wait_until(lambda: task_status(session.session_id, "a") == "complete", 10, "stored")
        final = session.to_dict()["tasks"]["a"]
        assert (final["status"], final["message"]) == ("complete", "")


# -- quiet outages (issue 21 O) ------------------------------------------------------------


def _read_all(response: Any, into: list[str]) -> None:
    into.append(b"".join(response.streaming_content).decode())


@pytest.mark.django_db
def test_a_freeze_is_one_warning_and_ndjson_streams_end_with_the_retry_line(
    private_redis: dict[str, Any], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis frozen under 7 open streams (3 SSE, 3 NDJSON, a group): one WARNING when
    the process notices, one when the cache answers again, no traceback; NDJSON
    streams end with the documented retry line, SSE streams without ``done``."""
    from progress_ui.streaming import outage
    from progress_ui.streaming.ndjson_stream import retry_line

    monkeypatch.setattr(outage, "_outage", outage._Outage())
    sessions = [ProgressSession.create({"a": "A"}) for _ in range(3)]
    for session in sessions:
        session.update("a", percent=30)
    paths = [f"/progress/{s.session_id}/events/" for s in sessions]
    paths += [f"/progress/{s.session_id}/stream/" for s in sessions]
    paths.append("/progress/events/?" + "&".join(f"session={s.session_id}" for s in sessions))
    server: WorkerProcess = private_redis["server"]
    bodies: dict[str, list[str]] = {path: [] for path in paths}
    with caplog.at_level(logging.DEBUG, logger="progress_ui"):
        responses = {path: Client().get(path) for path in paths}
        assert {r.status_code for r in responses.values()} == {200}
        readers = [
            threading.Thread(target=_read_all, args=(responses[p], bodies[p]), daemon=True)
            for p in paths
        ]
        for reader in readers:
            reader.start()
        os.kill(server.pid, signal.SIGSTOP)  # frozen: every read times out
        try:
            for reader in readers:
                reader.join(30)
            assert not any(reader.is_alive() for reader in readers), "a stream did not end"
        finally:
            os.kill(server.pid, signal.SIGCONT)
        sessions[0].complete("a")
        # A new stream's poller reads the cache again: the outage is over.
        assert "event: done" in b"".join(Client().get(paths[0]).streaming_content).decode()
    for path in paths:
        [body] = bodies[path]
        assert "event: done" not in body and "progress-error" not in body
        if "/stream/" in path:
            assert body.endswith(retry_line()), body
            assert retry_line() == '{"retry":2000}\n'
            assert '"error"' not in body
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    down = [m for m in said if "cannot be reached" in m]
    back = [m for m in said if "answers again" in m]
    assert (len(down), len(back)) == (1, 1), said
    assert outage.outages() == 1


def test_stream_ends_an_outage_with_the_retry_line(
    private_redis: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """``ProgressSession.stream()`` (the blocking NDJSON iterator) interrupted by a
    Redis that stops: its last line is the documented retry line, as the NDJSON
    endpoint's, not ``{"error": ...}``; one WARNING, no traceback."""
    from progress_ui.wire.ndjson import format_retry

    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=30)
    lines = session.stream(poll_interval=0.05)
    with caplog.at_level(logging.DEBUG, logger="progress_ui"):
        first = json.loads(next(lines))
        assert first["tasks"]["a"]["status"] == "running"
        kill_process(private_redis["server"])  # Redis is gone: every read fails
        rest = list(lines)  # ends by itself
    assert rest, "the stream ended without a last line"
    assert rest[-1] == format_retry() == '{"retry":2000}\n'
    assert not any('"error"' in line for line in rest), rest
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "retry line" in warned[0].getMessage(), caplog.text
