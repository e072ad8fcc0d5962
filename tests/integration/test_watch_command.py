"""``manage.py progress watch|list`` as a real subprocess.

The test process drives a session in a shared cache (Redis or files) while
``python -m django progress watch <id> --no-live`` follows it in another process,
or follows it through a real ASGI server with ``--url``. Each run is bounded and
stopped by its PID (``tests.support.workers``).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import Client

from progress_ui import ProgressSession
from progress_ui.cli.arguments import credentials
from progress_ui.cli.sanitize import safe_text
from progress_ui.cli.snapshots import BadSnapshot, TaskTracker, read_snapshot
from tests.conftest import _use_backend, require_redis
from tests.support.servers import free_port, run_server
from tests.support.workers import ROOT, WorkerProcess, running_process

pytestmark = [pytest.mark.slow]

#: Seconds for one watch to end (Django start-up on 2 shared, noisy cores included).
WAIT = 60.0
UNKNOWN_ID = "A" * 32
TASKS = {"products": "Import products", "prices": "Update prices"}


def watch_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", "progress", "watch", *args]


def child_env(cache: str, **extra: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "tests.support.settings",
        "PROGRESS_TEST_CACHE": cache,
        **extra,
    }


def finish(worker: WorkerProcess) -> tuple[int, str]:
    """Its exit status and output, once it exits (at most WAIT seconds)."""
    status = worker.wait_exit(WAIT)
    assert status is not None, f"watch did not end within {WAIT}s:\n{worker.output()}"
    return status, worker.output()


def in_thread(work: Callable[[], None]) -> Callable[[], None]:
    """Run ``work`` in a thread; the returned function joins it (bounded) and
    re-raises what it raised."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> None:
        thread.join(WAIT)
        assert not thread.is_alive(), "the driving thread did not finish"
        if failed:
            raise failed[0]

    return join


def drive(session: ProgressSession, end: str) -> None:
    """Measured progress on one task, then ``end``: complete, error or cancel."""
    session.start("products")
    for i in range(1, 4):
        session.update("products", current=i, total=3, message=f"row {i} of 3")
        time.sleep(0.3)
    session.complete("products")
    session.start("prices")
    time.sleep(0.3)
    if end == "complete":
        session.complete("prices")
    elif end == "error":
        session.error("prices", "Supplier feed returned 503")
    else:
        session.cancel()


@pytest.fixture(params=["redis", "file"])
def shared(request: pytest.FixtureRequest) -> Iterator[str]:
    """A cache this process and the child share; yields its alias."""
    yield from _use_backend(request.param, request)


# -- through the cache --------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "code", "summary"),
    [
        ("complete", 0, "Complete: 100% (2/2 complete)."),
        ("error", 1, "Failed: "),
        ("cancel", 2, "Cancelled: "),
    ],
)
def test_watch_follows_a_live_job_to_its_end(
    shared: str, end: str, code: int, summary: str
) -> None:
    session = ProgressSession.create(TASKS)
    argv = watch_argv(session.session_id, "--no-live", "--poll-interval", "0.05")
    argv += ["--line-interval", "0"]
    with running_process(argv, env=child_env(shared), ready="Overall: pending 0%") as worker:
        join = in_thread(lambda: drive(session, end))
        status, output = finish(worker)
        join()
    lines = output.splitlines()
    assert status == code, output
    assert "Import products: pending 0%" in lines, output
    assert any(
        re.fullmatch(r"Import products: running \d+% \(2/3\) - row 2 of 3", x) for x in lines
    )
    assert "Import products: complete 100% (3/3) - row 3 of 3" in lines, output
    assert lines[-1].startswith(summary), output
    if end == "error":
        assert "Update prices: error" in output
        assert lines[-1].endswith("; Update prices: Supplier feed returned 503."), output
    if end == "cancel":
        assert "Update prices: cancelled" in output


def test_watch_an_unknown_or_malformed_id_exits_3(shared: str) -> None:
    # An id may start with "-": the command does not take it for an option.
    for session_id in (UNKNOWN_ID, "-" + UNKNOWN_ID[1:], "not-an-id"):
        # Django's common options work after the sub-command too.
        argv = watch_argv(session_id, "--no-live", "--settings", "tests.support.settings")
        with running_process(argv, env=child_env(shared)) as worker:
            status, output = finish(worker)
        assert status == 3, output
        assert "Not found" in output


def test_watch_a_session_that_expires_while_watched_exits_3(shared: str) -> None:
    session = ProgressSession.create(TASKS)
    argv = watch_argv(session.session_id, "--no-live", "--poll-interval", "0.05")
    with running_process(argv, env=child_env(shared), ready="Overall: pending") as worker:
        session.delete()
        status, output = finish(worker)
    assert status == 3, output
    assert output.splitlines()[-1] == "Expired: the session is gone from the cache.", output


def test_watch_timeout_exits_4(shared: str) -> None:
    session = ProgressSession.create(TASKS)
    argv = watch_argv(session.session_id, "--no-live", "--timeout", "1")
    with running_process(argv, env=child_env(shared)) as worker:
        status, output = finish(worker)
    assert status == 4, output
    assert "Stopped before the session finished: pending 0%" in output


def test_live_bars_with_rich(shared: str) -> None:
    session = ProgressSession.create(TASKS)
    session.complete("products")
    session.complete("prices")
    time.sleep(0.4)  # past the completing animation
    argv = watch_argv(session.session_id, "--live")
    with running_process(argv, env=child_env(shared, COLUMNS="100")) as worker:
        status, output = finish(worker)
    assert status == 0, output
    assert "\u2501" in output  # the bars' line character
    assert re.search(r"Overall .* 100% complete", output), output
    assert output.splitlines()[-1] == "Complete: 100% (2/2 complete).", output


def test_without_rich_live_says_how_to_install_and_prints_plain_lines(
    shared: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "rich"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('rich is blocked for this test')\n")
    session = ProgressSession.create(TASKS)
    session.complete("products")
    session.error("prices", "Nope")
    env = child_env(shared, PYTHONPATH=f"{tmp_path}:{ROOT}")
    with running_process(watch_argv(session.session_id, "--live"), env=env) as worker:
        status, output = finish(worker)
    assert status == 1, output
    assert 'pip install "django-progress-ui[watch]"' in output
    assert "Update prices: error 0% - Nope" in output


# -- through a server (--url) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def asgi_server(django_db_setup: None) -> Iterator[str]:
    require_redis()
    with run_server("asgi", env={"PROGRESS_TEST_CACHE": "redis"}) as base:
        yield base


@pytest.fixture
def server(
    asgi_server: str, request: pytest.FixtureRequest, transactional_db: None
) -> Iterator[str]:
    """The server's base URL, with this process on its cache (Redis) and its
    database (committed, so that the server sees the test client's sessions)."""
    for _ in _use_backend("redis", request):
        yield asgi_server


@pytest.mark.server
def test_url_mode_follows_a_session_without_owner(server: str) -> None:
    session = ProgressSession.create(TASKS)
    url = f"{server}/progress/{session.session_id}/stream/"
    argv = watch_argv("--url", url, "--no-live", "--line-interval", "0")
    with running_process(argv, env=child_env("redis"), ready="Overall: pending 0%") as worker:
        join = in_thread(lambda: drive(session, "complete"))
        status, output = finish(worker)
        join()
    assert status == 0, output
    assert "Import products: complete 100% (3/3) - row 3 of 3" in output
    assert output.splitlines()[-1] == "Complete: 100% (2/2 complete).", output


@pytest.mark.server
def test_url_mode_with_the_owners_cookie_and_as_a_stranger(server: str) -> None:
    owner = Client()
    session_id = owner.post("/tests-start-owned/").content.decode()
    cookie = owner.cookies["sessionid"].value
    session = ProgressSession.get(session_id)
    assert session is not None
    url = f"{server}/progress/{session_id}/stream/"

    argv = watch_argv("--url", url, "--no-live", "--cookie", f"sessionid={cookie}")
    with running_process(argv, env=child_env("redis"), ready="Overall: pending 0%") as worker:
        session.update("a", current=1, total=2, message="half")
        session.complete("a")
        status, output = finish(worker)
    assert status == 0, output
    assert output.splitlines()[-1] == "Complete: 100% (1/1 complete).", output

    for extra in ([], ["--cookie", "sessionid=not-the-owners"]):
        with running_process(
            watch_argv("--url", url, "--no-live", *extra), env=child_env("redis")
        ) as stranger:
            status, output = finish(stranger)
        assert status == 3, output
        assert "Not found: HTTP 404" in output


@pytest.mark.server
def test_url_mode_unknown_id_and_wrong_endpoint(server: str) -> None:
    argv = watch_argv("--url", f"{server}/progress/{UNKNOWN_ID}/stream/", "--no-live")
    with running_process(argv, env=child_env("redis")) as worker:
        assert finish(worker)[0] == 3
    session = ProgressSession.create(TASKS)
    argv = watch_argv("--url", f"{server}/progress/{session.session_id}/json/", "--no-live")
    with running_process(argv, env=child_env("redis")) as worker:
        status, output = finish(worker)
    assert status == 4, output
    assert "expected application/x-ndjson" in output


# -- transport failures, with a canned NDJSON server ----------------------------------------


class Canned(http.server.BaseHTTPRequestHandler):
    """Answers each GET with the next canned (status, headers, body)."""

    answers: list[tuple[int, dict[str, str], bytes]] = []
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        status, headers, body = type(self).answers.pop(0)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[str, type[Canned]]]:
    handler = type("Handler", (Canned,), {"answers": [], "seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def snapshot_line(status: str, percent: int) -> bytes:
    task = {"name": "A", "status": status, "percent": percent, "message": "", "current": None}
    snap = {"status": status, "overall_percent": percent, "tasks": {"a": task}, "expired": False}
    return json.dumps(snap).encode() + b"\n"


NDJSON = {"Content-Type": "application/x-ndjson"}


def test_url_mode_error_line_redirect_reconnect_and_no_server(
    canned: tuple[str, type[Canned]],
) -> None:
    base, handler = canned
    argv = watch_argv("--url", f"{base}/s/", "--no-live", "--header", "Authorization: Bearer x")

    # A failure line ends the stream: exit 4 with the server's (safe) message.
    handler.answers[:] = [(200, NDJSON, snapshot_line("running", 10) + b'{"error": "Boom"}\n')]
    with running_process(argv, env=child_env("locmem")) as worker:
        status, output = finish(worker)
    assert status == 4, output
    assert "the server reported: Boom" in output
    assert handler.seen[-1]["Authorization"] == "Bearer x"

    # A redirect is not followed (it would carry the credentials elsewhere).
    handler.answers[:] = [(302, {"Location": "http://example.invalid/login/"}, b"")]
    with running_process(argv, env=child_env("locmem")) as worker:
        status, output = finish(worker)
    assert status == 4, output
    assert "redirected to 'http://example.invalid/login/'" in output

    # A stream that ends before the session settles (MAX_STREAM_DURATION) is
    # picked up again; heartbeats (repeated lines) print nothing new.
    handler.answers[:] = [
        (200, NDJSON, snapshot_line("running", 10) * 3),
        (200, NDJSON, snapshot_line("complete", 100)),
    ]
    with running_process(argv, env=child_env("locmem")) as worker:
        status, output = finish(worker)
    assert status == 0, output
    assert output.count("A: running 10%") == 1, output
    assert output.splitlines()[-1] == "Complete: 100% (1/1 complete).", output

    # Nothing listening: exit 4.
    dead = watch_argv("--url", f"http://127.0.0.1:{free_port()}/s/", "--no-live")
    with running_process(dead, env=child_env("locmem")) as worker:
        status, output = finish(worker)
    assert status == 4, output
    assert "could not connect" in output


# -- list -----------------------------------------------------------------------------------


def test_list_shows_each_session_once_newest_first(shared_backend: str) -> None:
    """Regression: ``list`` worked on Redis only (it SCANned keys); the session
    index lists on every shared cache."""
    running = ProgressSession.create(TASKS)
    running.start("products")  # also writes this process's liveness key
    running.update("products", current=1, total=4)
    done = ProgressSession.create({"a": "A"}, owner="user:7")
    done.complete("a")
    time.sleep(0.4)
    argv = [sys.executable, "-m", "django", "progress", "list"]
    with running_process(argv, env=child_env(shared_backend)) as worker:
        status, output = finish(worker)
    assert status == 0, output
    rows = [line.split() for line in output.splitlines()[1:-1]]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", row[0]) for row in rows), output
    assert [row[0] for row in rows] == [done.session_id, running.session_id], output
    created = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert all(re.fullmatch(created, row[4]) for row in rows), output
    assert rows[1][1:4] + rows[1][5:] == ["running", "12", "2", "-"], output
    assert rows[0][1:4] + rows[0][5:] == ["complete", "100", "1", "user:7"], output


def test_list_without_the_session_index_says_so(request: pytest.FixtureRequest) -> None:
    for _ in _use_backend("file", request):
        ProgressSession.create(TASKS)
        argv = [sys.executable, "-m", "django", "progress", "list"]
        env = child_env("file", PROGRESS_TEST_UI='{"INDEX_SIZE": 0}')
        with running_process(argv, env=env) as worker:
            status, output = finish(worker)
    assert status == 0, output
    assert "Listing sessions needs the session index" in output


@pytest.mark.parametrize("action", ["list", "watch"])
def test_a_closed_pipe_ends_the_command_quietly(
    action: str, request: pytest.FixtureRequest
) -> None:
    """``progress list | head``: the reader goes away before the output is written."""
    for _ in _use_backend("redis", request):
        session = ProgressSession.create(TASKS)
        argv = [sys.executable, "-m", "django", "progress", action]
        if action == "watch":
            argv += [session.session_id, "--no-live", "--timeout", "20"]
        child = subprocess.Popen(
            argv,
            env={**os.environ, **child_env("redis")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()  # nobody reads: its first write fails with EPIPE
        try:
            _, errors = child.communicate(timeout=WAIT)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.returncode == 141, errors.decode()
    assert b"Traceback" not in errors and b"BrokenPipe" not in errors, errors.decode()


# -- in-process pieces ----------------------------------------------------------------------


def test_remote_text_cannot_drive_the_terminal() -> None:
    assert safe_text("ok\x1b[2J\u202egone\nnext\tcol") == "ok[2Jgone next col"
    snap = read_snapshot(
        {
            "status": "running",
            "tasks": {"a": {"name": 5, "status": "running", "percent": 1e9, "current": "x"}},
        },
        TaskTracker(),
    )
    task = snap.tasks["a"]
    assert (task.name, task.percent, task.current, snap.expired) == ("5", 100, None, False)
    with pytest.raises(BadSnapshot):
        read_snapshot(["not", "a", "snapshot"], TaskTracker())


def test_credentials_make_headers() -> None:
    headers = credentials(["sessionid=abc", "csrftoken=x"], ["X-Api-Key: k:1"])
    assert headers == {"X-Api-Key": "k:1", "Cookie": "sessionid=abc; csrftoken=x"}
    from django.core.management import CommandError

    for bad in (["novalue"], ["a=b; c=d"]):
        with pytest.raises(CommandError):
            credentials(bad, [])
