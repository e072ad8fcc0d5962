"""Where the memory of an open SSE stream goes: Python allocations per viewer.

    .venv/bin/python bench/stream_memory.py [--n 500]

Drives Django's ASGI handler, wrapped by ``release_stream_threads`` as the
README recommends (so streams take the direct path, ``streaming.direct``, on
Python 3.12+), in this process, through the ASGI interface: N viewers of N / 10
sessions (LocMem cache), each a GET of ``progress_ui:sse`` whose client keeps
nothing of what it is sent. Once every viewer has its first message,
``tracemalloc`` compares the heap with the one before they connected, and
prints the bytes per open stream by the file that allocated them, grouped into
Django (and asgiref), asyncio, this package and the rest.

It counts Python allocations only: the server's own connection objects
(uvicorn's protocol, its parser and socket buffers) and the allocator's slack
are not in it, which is why ``bench/fanout.py`` (RSS of a real uvicorn process)
reads more per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from _django import ROOT, setup

setup("locmem")

from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from progress_ui import ProgressSession, release_stream_threads  # noqa: E402
from tests.support.scopes import http_get  # noqa: E402

App = Callable[..., Awaitable[None]]


class Viewer:
    """One GET of an SSE stream that counts what it is sent and keeps none of it."""

    def __init__(self, app: App, path: str) -> None:
        scope = http_get(path)
        self.bodies = 0
        self.left = asyncio.Event()
        self.task = asyncio.create_task(app(scope, self.receive, self.send))
        self.asked = False

    async def receive(self) -> dict[str, Any]:
        if not self.asked:
            self.asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            self.bodies += 1


def group(filename: str) -> str:
    if "/django/" in filename or "/asgiref/" in filename:
        return "Django and asgiref"
    if "/asyncio/" in filename:
        return "asyncio"
    if "/progress_ui/" in filename:
        return "progress_ui"
    return "other"


async def measure(n: int) -> None:
    app = release_stream_threads(get_asgi_application())
    create = sync_to_async(ProgressSession.create)
    sessions = [await create({"a": "Import"}) for _ in range(max(1, n // 10))]
    for session in sessions:
        await sync_to_async(session.update)("a", percent=10, message="first")
    paths = [f"/progress/{s.session_id}/events/" for s in sessions]
    warm = [Viewer(app, path) for path in paths]  # pollers, renderings, imports
    while not all(v.bodies for v in warm):
        await asyncio.sleep(0.05)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    viewers = [Viewer(app, paths[i % len(paths)]) for i in range(n)]
    while not all(v.bodies for v in viewers):
        await asyncio.sleep(0.05)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    by_group: dict[str, int] = defaultdict(int)
    rows = after.compare_to(before, "filename")
    for row in rows:
        by_group[group(row.traceback[0].filename)] += row.size_diff
    total = sum(by_group.values())
    print(f"{n} open SSE streams: {total / n / 1024:.1f} KB of Python allocations each\n")
    print("| allocated by | bytes per stream |\n|---|---|")
    for name, size in sorted(by_group.items(), key=lambda item: -item[1]):
        print(f"| {name} | {size / n:.0f} |")
    print("\n| file | bytes per stream |\n|---|---|")
    for row in rows[:15]:
        name = row.traceback[0].filename.split("site-packages/")[-1]
        print(f"| {name.removeprefix(str(ROOT) + '/')} | {row.size_diff / n:.0f} |")
    for viewer in warm + viewers:
        viewer.left.set()
    await asyncio.gather(*(v.task for v in warm + viewers), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="open streams (default 500)")
    args = parser.parse_args()
    quick = {"CACHE_ALIAS": "locmem", "MAX_STREAMS": args.n * 2, "MAX_STREAMS_PER_CLIENT": 0}
    with override_settings(PROGRESS_UI={**settings.PROGRESS_UI, **quick}):
        asyncio.run(measure(args.n))


if __name__ == "__main__":
    main()
