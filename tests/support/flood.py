"""One client flooding a real server with streams it never reads (issue 21 A), while
an ordinary page is timed.

``flood(base, ...)`` drives ``SESSIONS`` sessions (each changing ``CHANGES`` times a
second, from a writer thread in this process, through the shared Redis cache),
opens ``singles`` single-session SSE streams and ``groups`` group streams (every
session in each) at once from one address, reads their headers only (and never a
byte more), and fetches a page every ``PAGE_EVERY`` seconds for ``duration``
seconds. Run ``python -m tests.support.flood`` for the table of the issue.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from progress_ui import ProgressSession

SESSIONS = 20
CHANGES = 10
PAGE_EVERY = 0.25


@dataclass
class FloodResult:
    served: int = 0
    refused: int = 0
    #: Connections that got no headers within the time allowed.
    silent: int = 0
    cpu_percent: float = 0.0
    pages: list[float] = field(default_factory=list)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.pages, n=20)[-1] if len(self.pages) > 1 else 0.0

    def row(self, label: str) -> str:
        p50, top = statistics.median(self.pages) * 1000, max(self.pages) * 1000
        return (
            f"| {label} | {self.cpu_percent:.0f} % "
            f"| p50 {p50:.0f} ms, p95 {self.p95 * 1000:.0f} ms, max {top:.0f} ms "
            f"| {self.served} served, {self.refused} refused, {self.silent} silent |"
        )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _open(base: str, path: str) -> socket.socket:
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def _status(sock: socket.socket, deadline: float) -> int | None:
    """The status of the answer, from its first bytes (the rest is never read)."""
    head = b""
    while b"\r\n" not in head:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(64)
        except TimeoutError:
            return None
        if not chunk:
            return None
        head += chunk
    return int(head.split(b" ", 2)[1])


def _timed_page(base: str, path: str) -> float:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    started = time.monotonic()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        return time.monotonic() - started
    except TimeoutError:
        return 30.0
    finally:
        conn.close()


def flood(base: str, pid: int, *, singles: int, groups: int, duration: float) -> FloodResult:
    sessions = [ProgressSession.create({"a": "A"}) for _ in range(SESSIONS)]
    stop = threading.Event()

    def write() -> None:
        step = 0
        while not stop.wait(1 / CHANGES):
            step += 1
            for session in sessions:
                session.update("a", percent=step % 99, message=f"step {step}")

    writer = threading.Thread(target=write, name="flood writer", daemon=True)
    writer.start()
    result = FloodResult()
    group = "/progress/events/?" + "&".join(f"session={s.session_id}" for s in sessions)
    paths = [f"/progress/{sessions[i % SESSIONS].session_id}/events/" for i in range(singles)]
    paths += [group] * groups
    socks: list[socket.socket] = []
    try:
        socks = [_open(base, path) for path in paths]
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        headers_by = started + 30
        page = f"/tests-page/{sessions[0].session_id}/"
        next_page = started
        pending = list(socks)
        while time.monotonic() - started < duration:
            if time.monotonic() >= next_page:
                result.pages.append(_timed_page(base, page))
                next_page += PAGE_EVERY
            if pending:  # a few headers at a time, between pages
                batch, pending = pending[:20], pending[20:]
                for sock in batch:
                    status = _status(sock, min(headers_by, time.monotonic() + 0.05))
                    if status is None and time.monotonic() < headers_by:
                        pending.append(sock)  # not yet: after the others
                        continue
                    if status == 200:
                        result.served += 1
                    elif status is None:
                        result.silent += 1
                    else:
                        result.refused += 1
                        sock.close()  # as a browser does with a refused stream
            else:
                time.sleep(0.01)
        result.silent += len(pending)
        elapsed = time.monotonic() - started
        result.cpu_percent = 100 * (cpu_seconds(pid) - cpu_before) / elapsed
    finally:
        stop.set()
        writer.join(5)
        for sock in socks:
            sock.close()
    return result


if __name__ == "__main__":  # the table: python -m tests.support.flood
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")
    os.environ["PROGRESS_TEST_CACHE"] = "redis"
    django.setup()
    from tests.support.servers import PIDS, run_server

    rows = [("none", 0, 0), ("40 single", 40, 0), ("40 group", 0, 40)]
    rows += [("200 single", 200, 0), ("200 group", 0, 200), ("100 + 100", 100, 100)]
    # The defaults; then without the per-client share (MAX_STREAMS alone).
    import json
    import sys

    ui = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    env = {"PROGRESS_TEST_CACHE": "redis", "PROGRESS_TEST_UI": json.dumps(ui)}
    print(f"settings: {ui or 'defaults'}")
    print("| streams | server CPU | page GET | streams |\n|---|---|---|---|")
    with run_server("asgi", env=env) as live:
        for label, singles, groups in rows:
            outcome = flood(live, PIDS[live], singles=singles, groups=groups, duration=15)
            print(outcome.row(label), flush=True)
            time.sleep(2)  # the closed streams leave
