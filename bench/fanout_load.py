"""The load generator of ``bench/fanout.py``: opens SSE streams and measures what
arrives on them.

    python bench/fanout_load.py --port P --ids ID,ID,... --viewers 10

Opens ``--viewers`` connections per session id to ``/progress/<id>/events/``
(at most ``--connect-rate`` new ones a second) and prints one JSON line once
every connection has answered or ``--connect-timeout`` has passed: how many
connected. It then reads one line ``[A, B]`` (the measuring window, epoch
seconds) from stdin, keeps reading the streams until ``B + --grace`` and prints
a last JSON line: changes delivered, lag histogram, bytes per message.

A change is a write timestamp (``t=<seconds>``, written into a task's message by
``bench/fanout_writer.py`` or by the reference server's ticker) that a viewer
sees for the first time; a session's timestamps only grow, so "first time" is
"greater than the last one this viewer saw" (a message that repeats an old one,
a reconnect's full snapshot say, counts nothing). Changes are counted by the
time they were written: those written inside the window, arriving before
``B + grace``. Lags (arrival minus write time) go into a 0.1 ms histogram that
the orchestrator merges across load processes.

Cheap per message (it shares the machine's cores with the server): a plain
``asyncio.Protocol`` per connection (no task, no wake-up per chunk), one
regular-expression scan per chunk, timestamps compared as bytes and parsed only
when new.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import resource
import sys
import time
from collections import Counter

STAMP = re.compile(rb"t=(\d{10}\.\d{6})")
#: A timestamp is at most this long: a chunk's tail is rescanned with the next
#: chunk, so that one split between two reads is still found.
TAIL = 20
#: Lag histogram buckets per millisecond.
BUCKETS_PER_MS = 10


class Totals:
    """What every viewer of this process saw."""

    def __init__(self) -> None:
        self.window = (float("inf"), float("inf"))
        self.connected = 0
        self.failed = 0
        #: Why streams failed: their status line, "closed" or "no answer".
        self.failures: Counter[str] = Counter()
        self.dropped = 0
        self.changes = 0
        self.lags: Counter[int] = Counter()
        self.bytes = 0
        self.messages = 0
        self.per_viewer: list[int] = []


class Viewer(asyncio.Protocol):
    """One SSE connection."""

    def __init__(self, request: bytes, totals: Totals, answered: asyncio.Future[None]) -> None:
        self.request = request
        self.totals = totals
        self.answered = answered
        self.transport: asyncio.BaseTransport | None = None
        self.status_seen = False
        self.last = b""
        self.tail = b""
        self.changes = 0
        self.closed_by_us = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        totals = self.totals
        if not self.status_seen:
            self.status_seen = True
            if not data.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                totals.failed += 1
                totals.failures[data.split(b"\r\n", 1)[0].decode(errors="replace")[:40]] += 1
                self._answer()
                self.closed_by_us = True
                assert self.transport is not None
                self.transport.close()
                return
            totals.connected += 1
            self._answer()
        start, end = totals.window
        if start <= now:
            totals.bytes += len(data)
            totals.messages += data.count(b"\n\n")
        for match in STAMP.finditer(self.tail + data):
            stamp = match.group(1)
            if stamp <= self.last:
                continue
            self.last = stamp
            written = float(stamp)
            if start <= written < end:
                totals.changes += 1
                self.changes += 1
                totals.lags[int((now - written) * 1000 * BUCKETS_PER_MS)] += 1
        self.tail = data[-TAIL:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status_seen:
            self.status_seen = True
            self.totals.failed += 1
            self.totals.failures["closed"] += 1
            self._answer()
        elif not self.closed_by_us:
            self.totals.dropped += 1

    def close(self) -> None:
        if not self.status_seen:
            self.status_seen = True
            self.totals.failed += 1
            self.totals.failures["no answer"] += 1
        self.closed_by_us = True
        self.totals.per_viewer.append(self.changes)
        if self.transport is not None:
            self.transport.close()

    def _answer(self) -> None:
        if not self.answered.done():
            self.answered.set_result(None)


async def run(args: argparse.Namespace) -> Totals:
    loop = asyncio.get_running_loop()
    totals = Totals()
    viewers: list[Viewer] = []
    answers: list[asyncio.Future[None]] = []
    interval = 1.0 / args.connect_rate
    started = time.monotonic()
    for n, sid in enumerate(sid for sid in args.ids.split(",") for _ in range(args.viewers)):
        request = f"GET /progress/{sid}/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        answered: asyncio.Future[None] = loop.create_future()
        try:
            _, viewer = await loop.create_connection(
                functools.partial(Viewer, request, totals, answered), "127.0.0.1", args.port
            )
        except OSError as exc:
            totals.failed += 1
            totals.failures[type(exc).__name__] += 1
            continue
        viewers.append(viewer)
        answers.append(answered)
        # Paced against the clock, not by sleeping a fixed interval after each.
        delay = started + (n + 1) * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    remaining = args.connect_timeout - (time.monotonic() - started)
    if answers and remaining > 0:
        await asyncio.wait(answers, timeout=remaining)
    print(json.dumps({"connected": totals.connected}), flush=True)

    line = await loop.run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("no window on stdin")
    start, end = json.loads(line)
    totals.window = (start, end)
    await asyncio.sleep(max(0.0, end + args.grace - time.time()))
    for viewer in viewers:
        viewer.close()
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ids", required=True, help="comma-separated session ids")
    parser.add_argument("--viewers", type=int, default=10, help="connections per session")
    parser.add_argument("--connect-rate", type=float, default=1000.0)
    parser.add_argument("--connect-timeout", type=float, default=30.0)
    parser.add_argument("--grace", type=float, default=1.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        totals = runner.run(run(args))
    print(
        json.dumps(
            {
                "connected": totals.connected,
                "failed": totals.failed,
                "failures": dict(totals.failures),
                "dropped": totals.dropped,
                "changes": totals.changes,
                "lags": dict(totals.lags),
                "bytes": totals.bytes,
                "messages": totals.messages,
                "viewers_without_change": sum(1 for c in totals.per_viewer if c == 0),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
