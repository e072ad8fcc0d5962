"""The load generator of ``bench/fanout.py``: opens SSE streams and measures what
arrives on them.

    python bench/fanout_load.py --port P --ids ID,ID,... --viewers 10 [--group-size 5] [--ramp]

Opens ``--viewers`` connections per session id to ``/progress/<id>/events/``
(with ``--group-size K``, per block of K consecutive ids to the group stream
``/progress/events/?session=<id>&...``), at most ``--connect-rate`` new ones a
second. Without ``--ramp`` it prints one JSON line once every connection has
answered or ``--connect-timeout`` has passed (how many connected), then reads
one line ``[A, B]`` (the measuring window, epoch seconds) from stdin. With
``--ramp`` it reads the window first and starts connecting at ``A``: viewers
arrive while the sessions change and the window is measured. Either way it
reads the streams until ``B + --grace`` and prints a last JSON line: changes
delivered, lag histogram, bytes per message, how long each viewer waited for
its answer, and each viewer's block, request and answer times (the
orchestrator counts the changes each viewer should have seen from those); that
last line is written to ``--out``, and stdout only says ``{"out": <path>}``.

A change is a write timestamp (``t=<seconds>``, written into a task's message by
``bench/fanout_writer.py`` or by the reference server's ticker; for groups
``t=<seconds> s=<session>``) that a viewer sees for the first time; a session's
timestamps only grow, so "first time" is "greater than the last one this viewer
saw of that session" (a message that repeats an old one, a reconnect's full
snapshot say, counts nothing). Changes are counted by the time they were
written: those written inside the window and after the viewer's answer arrived,
arriving before ``B + grace``. Lags (arrival minus write time) go into a 0.1 ms
histogram that the orchestrator merges across load processes; so do the gaps
between two messages of one viewer (1 ms buckets: a writer flood must not reach
a viewer more than once per poll interval).

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
from pathlib import Path

#: Starts with a literal: the regular-expression engine then skips to each "t=".
STAMP = re.compile(rb"t=(\d{10}\.\d{6})(?: s=(\d+))?")
#: A timestamp is at most this long: a chunk's tail is rescanned with the next
#: chunk, so that one split between two reads is still found.
TAIL = 32
#: Lag histogram buckets per millisecond.
BUCKETS_PER_MS = 10
#: Viewers slower than this to answer count as slow (the issue's goal: 2 s).
SLOW_CONNECT = 2.0


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
        #: Seconds from request to answer, of viewers that were answered.
        self.connect_times: list[float] = []
        #: Gaps between two messages of one viewer in the window (1 ms buckets).
        self.gaps: Counter[int] = Counter()


class Viewer(asyncio.Protocol):
    """One SSE connection."""

    def __init__(
        self,
        request: bytes,
        block: int,
        totals: Totals,
        answered: asyncio.Future[None],
        requested_at: float,
    ) -> None:
        self.request = request
        self.block = block
        self.totals = totals
        self.answered = answered
        self.transport: asyncio.BaseTransport | None = None
        self.status_seen = False
        #: When the connection was asked for (its handshake is part of the wait).
        self.requested_at = requested_at
        self.answered_at: float | None = None
        self.last_message_at: float | None = None
        #: The last timestamp seen, per session label (None without labels).
        self.last: dict[bytes | None, bytes] = {}
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
            self.answered_at = now
            totals.connect_times.append(now - self.requested_at)
            self._answer()
        start, end = totals.window
        if start <= now < end:
            totals.bytes += len(data)
            count = data.count(b"\n\n")
            totals.messages += count
            if count:
                if self.last_message_at is not None:
                    totals.gaps[int((now - self.last_message_at) * 1000)] += 1
                self.last_message_at = now
        answered_at = self.answered_at or now
        for match in STAMP.finditer(self.tail + data):
            stamp, label = match.groups()
            if stamp <= self.last.get(label, b""):
                continue
            self.last[label] = stamp
            written = float(stamp)
            if start <= written < end and written >= answered_at:
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


def paths(ids: list[str], group_size: int) -> list[str]:
    """The stream paths of the blocks of ``ids``: one session each, or groups."""
    if group_size <= 1:
        return [f"/progress/{sid}/events/" for sid in ids]
    blocks = [ids[i : i + group_size] for i in range(0, len(ids), group_size)]
    return ["/progress/events/?" + "&".join(f"session={sid}" for sid in b) for b in blocks]


async def read_window(loop: asyncio.AbstractEventLoop, totals: Totals) -> None:
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("no window on stdin")
    start, end = json.loads(line)
    totals.window = (start, end)


async def run(args: argparse.Namespace) -> tuple[Totals, list[Viewer]]:
    loop = asyncio.get_running_loop()
    totals = Totals()
    viewers: list[Viewer] = []
    answers: list[asyncio.Future[None]] = []
    interval = 1.0 / args.connect_rate
    if args.ramp:
        await read_window(loop, totals)
        await asyncio.sleep(max(0.0, totals.window[0] - time.time()))
    started = time.monotonic()
    targets = [
        (block, path)
        for block, path in enumerate(paths(args.ids.split(","), args.group_size))
        for _ in range(args.viewers)
    ]

    async def connect(block: int, path: str) -> None:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        answered: asyncio.Future[None] = loop.create_future()
        answers.append(answered)
        factory = functools.partial(Viewer, request, block, totals, answered, time.time())
        try:
            _, viewer = await loop.create_connection(factory, "127.0.0.1", args.port)
        except OSError as exc:
            totals.failed += 1
            totals.failures[type(exc).__name__] += 1
            answered.set_result(None)
            return
        viewers.append(viewer)

    connecting: set[asyncio.Task[None]] = set()
    for n, (block, path) in enumerate(targets):
        # Each connection in a task of its own: a slow handshake does not hold
        # the next ones back (the rate is the rate of requests, as browsers').
        task = loop.create_task(connect(block, path))
        connecting.add(task)
        task.add_done_callback(connecting.discard)
        # Paced against the clock, not by sleeping a fixed interval after each.
        delay = started + (n + 1) * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    if not args.ramp:
        remaining = args.connect_timeout - (time.monotonic() - started)
        if answers and remaining > 0:
            await asyncio.wait(answers, timeout=remaining)
        print(json.dumps({"connected": totals.connected}), flush=True)
        await read_window(loop, totals)
    await asyncio.sleep(max(0.0, totals.window[1] + args.grace - time.time()))
    for viewer in viewers:
        viewer.close()
    return totals, viewers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ids", required=True, help="comma-separated session ids")
    parser.add_argument("--viewers", type=int, default=10, help="connections per block")
    parser.add_argument("--group-size", type=int, default=1, help="sessions per stream")
    parser.add_argument("--ramp", action="store_true", help="read the window, then connect")
    parser.add_argument("--out", required=True, help="where to write the result (JSON)")
    parser.add_argument("--connect-rate", type=float, default=1000.0)
    parser.add_argument("--connect-timeout", type=float, default=30.0)
    parser.add_argument("--grace", type=float, default=1.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        totals, viewers = runner.run(run(args))
    times = sorted(totals.connect_times)
    # The result (hundreds of KB with 4,000 viewers) goes to a file; stdout says
    # where, in one short line.
    Path(args.out).write_text(
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
                "gaps": dict(totals.gaps),
                "connect_times": [round(t, 4) for t in times],
                "slow_connects": sum(1 for t in times if t > SLOW_CONNECT),
                # Block, request and answer time of every viewer that got a socket.
                "viewers": [[v.block, v.requested_at, v.answered_at] for v in viewers],
            }
        )
    )
    print(json.dumps({"out": args.out}), flush=True)


if __name__ == "__main__":
    main()
