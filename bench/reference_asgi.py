"""The bare ASGI reference of ``bench/fanout.py``: the same traffic with no Django,
no cache and no templates, as the floor to compare the package against.

    FANOUT_MESSAGE_BYTES=1400 uvicorn --factory bench.reference_asgi:make_app \\
        --loop uvloop --http httptools

Every ``GET /progress/<id>/events/`` is an SSE stream. The first viewer of an id
starts one asyncio task for it that ticks ``FANOUT_RATE`` times a second (10), on
a fixed schedule, and sends every viewer of that id one message of
``FANOUT_MESSAGE_BYTES`` bytes (the mean size of the package's messages at the
same N, measured in the same run) carrying ``t=<time of the tick>``, as the
package's messages carry the writer's time. Each viewer's own coroutine only
waits for its disconnect. Any other path answers 404.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Ticker:
    """One session: its viewers' ``send`` callables and the task that feeds them."""

    def __init__(self, rate: float, size: int) -> None:
        self.period = 1.0 / rate
        self.size = size
        self.viewers: set[Send] = set()
        self.task = asyncio.get_running_loop().create_task(self._run())

    def _message(self, now: float) -> bytes:
        head = f"id: {time.time_ns()}\ndata: <span>t={now:.6f}</span>".encode()
        return head + b"x" * max(0, self.size - len(head) - 2) + b"\n\n"

    async def _run(self) -> None:
        start = time.monotonic()
        tick = 0
        while self.viewers:
            tick += 1
            # On schedule, so that it ticks exactly `rate` times a second.
            await asyncio.sleep(max(0.0, start + tick * self.period - time.monotonic()))
            body = {
                "type": "http.response.body",
                "body": self._message(time.time()),
                "more_body": True,
            }
            for send in list(self.viewers):
                try:
                    await send(body)
                except OSError:  # the viewer left mid-send
                    self.viewers.discard(send)


def make_app() -> App:
    rate = float(os.environ.get("FANOUT_RATE", "10"))
    size = int(os.environ.get("FANOUT_MESSAGE_BYTES", "1500"))
    tickers: dict[str, Ticker] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        parts = scope["path"].split("/")
        if len(parts) != 5 or parts[1] != "progress" or parts[3] != "events":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not found"})
            return
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sid = parts[2]
        ticker = tickers.get(sid)
        if ticker is None or ticker.task.done():
            ticker = tickers[sid] = Ticker(rate, size)
        ticker.viewers.add(send)
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            ticker.viewers.discard(send)

    return app
