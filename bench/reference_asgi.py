"""The bare ASGI reference of ``bench/fanout.py``: the same traffic with no Django,
no cache and no templates, as a floor to compare the package against.

    uvicorn --factory bench.reference_asgi:make_app ...

Every ``GET /progress/<id>/events/`` is an SSE stream. The first viewer of an id
starts a ticker that, ``FANOUT_RATE`` times a second (10), makes one message of
``FANOUT_MESSAGE_BYTES`` bytes carrying ``t=<time>``, as the package's messages
carry the writer's time, and hands it to every viewer of that id; each viewer's
own task sends it (one task per stream, as Django's streaming responses have).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

Scope = dict[str, Any]


class Ticker:
    def __init__(self, rate: float, size: int) -> None:
        self.rate, self.size = rate, size
        self.changed = asyncio.Event()
        self.message = b""
        self.viewers = 0
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        period = 1.0 / self.rate
        while True:
            await asyncio.sleep(period)
            head = f"id: {time.time_ns()}\ndata: t={time.time():.6f} ".encode()
            self.message = head + b"x" * max(0, self.size - len(head) - 2) + b"\n\n"
            changed, self.changed = self.changed, asyncio.Event()
            changed.set()


def make_app() -> Any:
    rate = float(os.environ.get("FANOUT_RATE", "10"))
    size = int(os.environ.get("FANOUT_MESSAGE_BYTES", "1500"))
    tickers: dict[str, Ticker] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if not path.startswith("/progress/"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        sid = path.split("/")[2]
        ticker = tickers.get(sid)
        if ticker is None:
            ticker = tickers[sid] = Ticker(rate, size)
        ticker.viewers += 1
        headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        disconnected = asyncio.ensure_future(until_disconnect())
        try:
            while not disconnected.done():
                await ticker.changed.wait()
                body = {"type": "http.response.body", "body": ticker.message, "more_body": True}
                await send(body)
        finally:
            disconnected.cancel()
            ticker.viewers -= 1

    return app
