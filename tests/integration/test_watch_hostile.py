"""``manage.py progress watch --url`` against a hostile server, in both display modes.

A real HTTP server on loopback, started by each test and stopped at its end,
sends what a malicious or broken site could: terminal escapes in every field,
unknown statuses, malformed and deeply nested JSON, valid lines forever, a byte
every 2 s, and 60,000 new task ids per line. The watcher runs as a real
subprocess: plain lines into a file (``--no-live``), or live bars with ``rich``
on a pseudo-terminal (``--live``), where the cursor is hidden while it draws.

Every loop of the server is bounded (``SERVER_LIMIT``) and ends when the test
stops it; every watcher process is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from progress_ui import ProgressSession
from tests.conftest import _use_backend
from tests.support.workers import ROOT, WorkerProcess, running_process

pytestmark = [pytest.mark.slow]

#: Seconds for one watch to end (Django start-up on 2 shared, noisy cores included).
WAIT = 60.0
#: Seconds any loop of the hostile server may run.
SERVER_LIMIT = 60.0
#: Seconds a watch may take past its deadline (closing, flushing, exiting).
GRACE = 2.5
NDJSON = "application/x-ndjson"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
#: Each piece a terminal would obey; none may reach it.
HOSTILE = (
    "\x1b]0;pwned-title\x07"  # OSC 0: the window title
    "\x1b]52;c;cHduZWQ=\x07"  # OSC 52: write the clipboard
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8: a link
    "\x1b[2J"  # clear the screen
    "\x9b31m"  # C1 CSI: red
    "\u202egnp.exe"  # right-to-left override
)
FORBIDDEN = {
    "OSC": "\x1b]",
    "BEL": "\x07",
    "ST": "\x1b\\",
    "ESC[2J": "\x1b[2J",
    "C1 CSI": "\x9b",
    "U+202E": "\u202e",
}
MODES = ["plain", "live"]
#: A CSI sequence as rich writes them (colours, cursor moves, cursor shown).
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def assert_inert(output: str) -> None:
    found = [name for name, seq in FORBIDDEN.items() if seq in output]
    assert not found, f"{found} reached the terminal:\n{output[-3000:]!r}"


def assert_one_line_failure(output: str, expected: str) -> None:
    assert "Traceback" not in output, output
    text = CSI.sub("", output.replace("\r\n", "\n"))  # rich's own cursor and colour codes
    last = text.rstrip("\n").splitlines()[-1]
    assert last.startswith("Failed: "), output
    assert expected in last, output


def assert_cursor_shown(output: str) -> None:
    """The live display hid the cursor, and showed it again after."""
    assert HIDE_CURSOR in output, f"the live display never started:\n{output!r}"
    assert output.rfind(SHOW_CURSOR) > output.rfind(HIDE_CURSOR), f"cursor left hidden:\n{output!r}"


def task(status: str = "running", percent: int = 10, **fields: object) -> dict[str, object]:
    return {"name": "Import", "status": status, "percent": percent, "message": "", **fields}


def line(status: str = "running", percent: int = 10, **tasks: dict[str, object]) -> bytes:
    snap = {
        "session_id": "S" * 32,
        "status": status,
        "overall_percent": percent,
        "tasks": tasks or {"a": task(status, percent)},
        "expired": False,
    }
    return json.dumps(snap).encode() + b"\n"


# -- the hostile server ------------------------------------------------------------


@dataclass
class Hostile:
    """The server's state: what it answers with, and what it saw."""

    base: str = ""
    #: Writes the body of each response (headers are sent before).
    script: Callable[[Hostile, Callable[[bytes], None]], None] = lambda s, w: None
    requests: list[float] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    #: Set by a script once it has sent what the test waits for.
    sent: threading.Event = field(default_factory=threading.Event)
    #: Set by the test to let a waiting script go on.
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"{self.base}/progress/{'S' * 32}/stream/"

    def pause(self, seconds: float) -> None:
        """Wait, unless the test is over (then end the script)."""
        if self.stopped.wait(seconds):
            raise ConnectionAbortedError("the test is over")


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: the body ends when the connection closes, as a stream's does.
    hostile: Hostile
    #: Seconds a blocked write may take before the server gives up on the client.
    timeout = 30

    def do_GET(self) -> None:
        state = type(self).hostile
        state.requests.append(time.monotonic())
        self.send_response(200)
        self.send_header("Content-Type", NDJSON)
        self.end_headers()

        def write(data: bytes) -> None:
            self.wfile.write(data)
            self.wfile.flush()

        # The client going away (or the test ending) ends the script.
        with contextlib.suppress(OSError):
            state.script(state, write)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    state = Hostile()
    handler = type("HostileHandler", (Handler,), {"hostile": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = False  # server_close() joins the handlers (each bounded)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        state.stopped.set()
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def send(*lines: bytes) -> Callable[[Hostile, Callable[[bytes], None]], None]:
    def script(state: Hostile, write: Callable[[bytes], None]) -> None:
        for data in lines:
            write(data)

    return script


# -- the watcher, plain or live ------------------------------------------------------


def child_env() -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "tests.support.settings",
        "PROGRESS_TEST_CACHE": "locmem",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "TERM": "xterm-256color",
        "COLUMNS": "120",
        "LINES": "30",
    }


class PtyWatcher:
    """The watcher on a pseudo-terminal (so ``rich`` draws live and hides the
    cursor), its output read by a thread; stopped by its PID."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        # rich decides from the terminal alone, not from these.
        ignored = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
        inherited = {k: v for k, v in os.environ.items() if k not in ignored}
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**inherited, **child_env(), **(env or {})},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.data = bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            self.data += chunk

    def output(self) -> str:
        return bytes(self.data).decode(errors="replace")

    def exit_status(self) -> int | None:
        return self.proc.poll()

    def wait_exit(self, timeout: float) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.reader.join(10)  # the rest of its output
        os.close(self.master)


Watcher = WorkerProcess | PtyWatcher


@contextlib.contextmanager
def watching(mode: str, url: str, *options: str) -> Iterator[Watcher]:
    argv = [sys.executable, "-m", "django", "progress", "watch", "--url", url, *options]
    if mode == "plain":
        with running_process([*argv, "--no-live", "--line-interval", "0"], env=child_env()) as w:
            yield w
        return
    watcher = PtyWatcher([*argv, "--live"])
    try:
        yield watcher
    except BaseException:
        sys.stderr.write(f"--- output of the live watcher ---\n{watcher.output()!r}\n")
        raise
    finally:
        watcher.stop()


def finish(watcher: Watcher, wait: float = WAIT) -> tuple[int, str, float]:
    """Its exit status, output and the time it exited, once it does (at most ``wait`` s)."""
    deadline = time.monotonic() + wait
    while (status := watcher.exit_status()) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    exited = time.monotonic()
    if isinstance(watcher, PtyWatcher) and status is not None:
        watcher.reader.join(10)  # its last output
    output = watcher.output() if isinstance(watcher, PtyWatcher) else watcher.output(10**6)
    assert status is not None, f"watch did not end within {wait:.0f}s:\n{output[-3000:]!r}"
    return status, output, exited


def wait_for(watcher: Watcher, pattern: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = watcher.output() if isinstance(watcher, PtyWatcher) else watcher.output(10**6)
        if re.search(pattern, text):
            return
        assert watcher.exit_status() is None, f"watch exited early:\n{text[-3000:]!r}"
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not shown within {timeout:.0f}s")


# -- B: escapes in every field ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_escapes_in_every_field_never_reach_the_terminal(hostile: Hostile, mode: str) -> None:
    dressed = task(
        name=f"Import{HOSTILE}",
        message=f"row 1{HOSTILE}",
        step=1,
        steps=2,
        step_name=f"prices.csv{HOSTILE}",
        current=1,
        total=3,
    )
    first = json.loads(line(**{f"id{HOSTILE}": dressed}))
    first["session_id"] = HOSTILE
    # Then the status itself: no longer a status this package knows.
    second = json.loads(line(status=HOSTILE, **{f"id{HOSTILE}": {**dressed, "status": HOSTILE}}))
    hostile.script = send(json.dumps(first).encode() + b"\n", json.dumps(second).encode() + b"\n")

    with watching(mode, hostile.url) as watcher:
        status, output, _ = finish(watcher)
    assert_inert(output)
    assert status == 4, output
    assert_one_line_failure(output, "the stream sent an unknown status '")
    if mode == "plain":
        # The text is shown, without what would drive the terminal.
        assert "Import]0;pwned-title]52;c;cHduZWQ=]8;;https://evil.example/" in output, output
        assert "gnp.exe" in output
    else:
        assert_cursor_shown(output)


# -- C: what is not a snapshot ends the watch in one line ---------------------------------

NOT_SNAPSHOTS = {
    "unknown status": (line("finished", 100), "the stream sent an unknown status 'finished'"),
    "deeply nested JSON": (b"[" * 100_000 + b"\n", "the stream sent bad JSON"),
    "malformed JSON": (b'{"status": "running", "tasks": {\n', "the stream sent bad JSON"),
    "not a snapshot": (b'{"status": "running", "tasks": [1, 2]}\n', "not a progress snapshot"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(NOT_SNAPSHOTS))
def test_what_is_not_a_snapshot_exits_4_in_one_line(hostile: Hostile, mode: str, kind: str) -> None:
    bad, expected = NOT_SNAPSHOTS[kind]
    hostile.script = send(line("running", 10), bad)
    with watching(mode, hostile.url) as watcher:
        status, output, _ = finish(watcher)
    assert status == 4, output
    assert_one_line_failure(output, expected)
    if mode == "live":
        assert_cursor_shown(output)


# -- D: --timeout is a deadline, --read-timeout an idle limit per byte ----------------------


def forever(state: Hostile, write: Callable[[bytes], None]) -> None:
    """Valid, changing lines every 50 ms, for as long as anyone reads."""
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < SERVER_LIMIT:
        write(line("running", n % 100))
        n += 1
        state.pause(0.05)


def trickle(state: Hostile, write: Callable[[bytes], None]) -> None:
    """A valid line, one byte every 2 s."""
    start = time.monotonic()
    data = line("running", 10)
    while time.monotonic() - start < SERVER_LIMIT:
        for byte in data:
            write(bytes([byte]))
            state.pause(2.0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("script", [forever, trickle], ids=["lines forever", "a byte every 2 s"])
def test_timeout_is_a_deadline_whatever_arrives(
    hostile: Hostile, mode: str, script: Callable[[Hostile, Callable[[bytes], None]], None]
) -> None:
    hostile.script = script
    with watching(mode, hostile.url, "--timeout", "3") as watcher:
        status, output, exited = finish(watcher, wait=30)
    assert status == 4, output
    assert hostile.requests, output
    # The deadline started before the request, so the watch ended within 3 s of it.
    assert exited - hostile.requests[0] < 3 + GRACE, output
    assert "Traceback" not in output
    if script is forever:
        assert "Stopped before the session finished: running" in output, output
        if mode == "live":
            assert_cursor_shown(output)


def test_read_timeout_is_an_idle_limit_per_byte(hostile: Hostile) -> None:
    hostile.script = trickle
    with watching("plain", hostile.url, "--read-timeout", "1") as watcher:
        status, output, exited = finish(watcher, wait=30)
    assert status == 4, output
    assert_one_line_failure(output, "the server sent nothing for 1 s")
    assert exited - hostile.requests[0] < 1 + GRACE, output


# -- E: bounded memory whatever arrives ----------------------------------------------------

#: Lines of new task ids, and ids per line: 1.8 million ids in all.
ID_LINES = 30
IDS_PER_LINE = 60_000
#: The watcher's peak resident memory allowed, in MB: Django, rich and one line
#: of 60,000 tasks decoded take about 80 MB; keeping every id seen took 633 MB.
MEMORY_LIMIT_MB = 200


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), in MB."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def many_ids(state: Hostile, write: Callable[[bytes], None]) -> None:
    small = {"status": "running", "percent": 50}
    for n in range(1, ID_LINES + 1):
        tasks = {f"t{n}-{i}": small for i in range(IDS_PER_LINE)}
        write(line("running", n, **tasks))
    state.sent.set()
    if not state.release.wait(SERVER_LIMIT):
        return
    write(line("complete", 100, **{"t1-0": {"status": "complete", "percent": 100}}))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
@pytest.mark.parametrize("mode", MODES)
def test_memory_stays_bounded_whatever_the_server_sends(hostile: Hostile, mode: str) -> None:
    hostile.script = many_ids
    with watching(mode, hostile.url) as watcher:
        assert hostile.sent.wait(WAIT * 2), "the server could not send its lines"
        # The watcher has shown the last line: it has read them all.
        wait_for(watcher, rf"Overall[^\n]*?[^\d;]{ID_LINES}%", timeout=WAIT * 2)
        peak = peak_rss_mb(watcher.pid)
        hostile.release.set()
        status, output, _ = finish(watcher)
    assert peak < MEMORY_LIMIT_MB, f"peak {peak:.0f} MB"
    assert status == 0, output[-3000:]
    if mode == "plain":
        assert f"{IDS_PER_LINE} tasks not shown" in output, output[-3000:]
        task_lines = [x for x in output.splitlines() if re.match(r"t\d+-\d+: ", x)]
        assert len(task_lines) <= 1000 + 1, len(task_lines)


# -- B and F: what the application stored is no safer ----------------------------------------


@pytest.fixture
def redis_cache(request: pytest.FixtureRequest) -> Iterator[str]:
    """The Redis progress cache, shared with the watcher's process."""
    yield from _use_backend("redis", request)


@pytest.mark.parametrize("mode", MODES)
def test_escapes_stored_in_the_cache_never_reach_the_terminal(redis_cache: str, mode: str) -> None:
    session = ProgressSession.create({"a": f"Import{HOSTILE}"})
    session.update("a", current=1, total=2, message=f"row 1{HOSTILE}")
    session.update("a", step=1, steps=2, step_name=f"prices.csv{HOSTILE}")
    session.error("a", f"Feed{HOSTILE} failed")
    argv = [sys.executable, "-m", "django", "progress", "watch", session.session_id]
    env = {"PROGRESS_TEST_CACHE": redis_cache}
    if mode == "plain":
        with running_process([*argv, "--no-live"], env={**child_env(), **env}) as worker:
            status, output, _ = finish(worker)
    else:
        watcher = PtyWatcher([*argv, "--live"], env)
        try:
            status, output, _ = finish(watcher)
        finally:
            watcher.stop()
    assert_inert(output)
    assert status == 1, output
    assert "gnp.exe failed" in output, output
    if mode == "live":
        assert_cursor_shown(output)


def test_list_shows_a_hostile_owner_token_as_text(redis_cache: str) -> None:
    session = ProgressSession.create({"a": "A"}, owner=f"user:{HOSTILE}")
    argv = [sys.executable, "-m", "django", "progress", "list"]
    with running_process(argv, env={**child_env(), "PROGRESS_TEST_CACHE": redis_cache}) as worker:
        status, output, _ = finish(worker)
    assert_inert(output)
    assert status == 0, output
    row = next(x for x in output.splitlines() if x.startswith(session.session_id))
    # id, status, percent, tasks, created, then the owner as given, made inert.
    assert row.split(None, 5)[5].startswith("user:]0;pwned-title]52;c;cHduZWQ="), row
