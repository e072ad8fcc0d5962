"""Cache reads per second for 1 and for 100 SSE viewers of one session, one ASGI process.

Starts uvicorn (one process) on the test settings with Redis as the cache, opens N
SSE connections (aiohttp, from this process) to one session whose state a producer
changes 10 times a second, and counts the snapshot reads (``MGET`` of that
session's keys) with Redis ``MONITOR``, which sees only commands, so it counts
every process's reads exactly. Also reports how many progress messages each
viewer received per second.

Usage: .venv/bin/python bench/streaming_reads.py [--seconds 5] [--viewers 1 100]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import _django  # bench/ is the script's folder, so first on sys.path

_django.setup(cache="redis")

import aiohttp  # noqa: E402
import redis  # noqa: E402
from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402

from progress_ui import ProgressSession  # noqa: E402
from tests.support.servers import run_server  # noqa: E402


class ReadCounter:
    """Counts MGETs touching ``session_id`` (Redis MONITOR in a thread)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.count = 0
        self.counting = False
        self._stop = False
        self._client = redis.Redis.from_url(settings.REDIS_URL)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._client.monitor() as monitor:
            for command in monitor.listen():
                if self._stop:
                    return
                text = command.get("command", "")
                if self.counting and text.upper().startswith("MGET") and self.session_id in text:
                    self.count += 1

    def stop(self) -> None:
        self._stop = True
        self._client.ping()  # wake the monitor loop


async def viewer(base: str, path: str, counts: list[int], ready: asyncio.Event) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(base + path) as response,
    ):
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            *messages, buffer = buffer.split(b"\n\n")
            for message in messages:
                if b"data: " in message:
                    counts[0] += 1
                    ready.set()


async def measure(base: str, viewers: int, seconds: float) -> tuple[float, float]:
    session = await sync_to_async(ProgressSession.create)({"job": "Job"})
    await sync_to_async(session.update)("job", current=0, total=100_000)
    counter = ReadCounter(session.session_id)
    path = f"/progress/{session.session_id}/events/"
    counts = [[0] for _ in range(viewers)]
    readies = [asyncio.Event() for _ in range(viewers)]
    tasks = [asyncio.create_task(viewer(base, path, counts[i], readies[i])) for i in range(viewers)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    await asyncio.sleep(0.5)
    for c in counts:
        c[0] = 0
    counter.counting = True
    start = time.monotonic()
    step = 0
    while time.monotonic() - start < seconds:  # the producer: 10 changes a second
        step += 1
        await sync_to_async(session.update)("job", current=step)
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - start
    counter.counting = False
    reads = counter.count / elapsed
    delivered = sum(c[0] for c in counts) / viewers / elapsed
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    counter.stop()
    await sync_to_async(session.delete)()
    return reads, delivered


async def run(args: argparse.Namespace) -> None:
    with run_server("asgi", env={"PROGRESS_TEST_CACHE": "redis"}) as base:
        await measure(base, 1, 1.0)  # warm-up
        print(f"uvicorn, 1 process, POLL_INTERVAL 0.1 s, producer 10 changes/s, {args.seconds} s")
        for n in args.viewers:
            reads, delivered = await measure(base, n, args.seconds)
            print(
                f"  {n:4d} viewer(s): {reads:5.1f} cache reads/s for the session, "
                f"{delivered:4.1f} messages/s per viewer"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 100])
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
