"""Time from a task's completion (or error) to the SSE events reaching an HTTP client.

Starts gunicorn (gthread) and uvicorn on the test settings with Redis as the shared
cache, drives sessions from this process and reads the SSE stream over a raw
socket. Reports, per server, the median / p95 / max of:

- ``complete -> first event``: ``complete()`` to the first message showing it,
- ``complete -> done``: ``complete()`` to ``event: done`` (includes the
  ``COMPLETING_DURATION`` animation, 0.3 s by default, by design),
- ``error -> done``: ``error()`` to ``event: done`` (no animation: pure pipeline).

Usage: .venv/bin/python bench/streaming_latency.py [--trials 30]
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import time
from urllib.parse import urlsplit

import _django  # bench/ is the script's folder, so first on sys.path

_django.setup(cache="redis")

from progress_ui import ProgressSession  # noqa: E402
from tests.support.servers import run_server  # noqa: E402


class Stream:
    def __init__(self, base: str, path: str) -> None:
        parts = urlsplit(base)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
        )
        self.buffer = b""

    def wait_for(self, marker: bytes, start: int = 0) -> float:
        """Monotonic time at which ``marker`` (after offset ``start``) arrived."""
        while marker not in self.buffer[start:]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"stream closed before {marker!r}")
            self.buffer += chunk
        return time.monotonic()

    def close(self) -> None:
        self.sock.close()


def trial(base: str, mode: str) -> tuple[float, float]:
    session = ProgressSession.create({"job": "Job"})
    session.update("job", percent=42)
    stream = Stream(base, f"/progress/{session.session_id}/events/")
    try:
        stream.wait_for(b"42%")
        offset = len(stream.buffer)
        # A random phase against the server's poll cycle.
        time.sleep(random.uniform(0.0, 0.2))
        t0 = time.monotonic()
        if mode == "complete":
            session.complete("job")
        else:
            session.error("job", "failed on purpose")
        first = stream.wait_for(b"\n\n", offset)
        done = stream.wait_for(b"data: done\n\n", offset)
        return first - t0, done - t0
    finally:
        stream.close()
        session.delete()


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):6.1f} ms  p95 {p95:6.1f} ms  max {ms[-1]:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    from django.conf import settings

    print(f"POLL_INTERVAL {settings.PROGRESS_UI.get('POLL_INTERVAL', 0.1)} s (default 0.1), "
          f"cache redis, {args.trials} trials per measurement")  # fmt: skip
    for kind, label in (("asgi", "uvicorn"), ("wsgi", "gunicorn gthread")):
        with run_server(kind, env={"PROGRESS_TEST_CACHE": "redis"}) as base:
            trial(base, "error")  # warm up imports and connections
            completes = [trial(base, "complete") for _ in range(args.trials)]
            errors = [trial(base, "error") for _ in range(args.trials)]
        print(f"{label}:")
        print(f"  complete -> first event  {summary([c[0] for c in completes])}")
        print(f"  complete -> done         {summary([c[1] for c in completes])}")
        print(f"  error    -> done         {summary([e[1] for e in errors])}")


if __name__ == "__main__":
    main()
