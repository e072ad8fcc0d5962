"""Reads merged: the MGETs that readers of one event loop ask for while one is on
its way go together in the next (``store.redis``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

#: Reads merged into one MGET at most.
_MAX_BATCH = 500


class MGetBatch:
    """The MGETs of one event loop, merged: the reads asked for while one MGET
    is on its way go together in the next one. A lone read goes at once; under
    load (many sessions followed, each changing often) one round trip carries
    the reads of many sessions."""

    def __init__(self, read: Callable[[list[str]], Awaitable[list[bytes | None]]]) -> None:
        #: One MGET of the keys (its errors already the store's).
        self.read = read
        self.waiting: list[tuple[list[str], asyncio.Future[list[bytes | None]]]] = []
        self.running = False

    async def get(self, keys: list[str]) -> list[bytes | None]:
        future: asyncio.Future[list[bytes | None]] = asyncio.get_running_loop().create_future()
        self.waiting.append((keys, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._run(), name="progress_ui MGET")
        return await future

    async def _run(self) -> None:
        batch: list[tuple[list[str], asyncio.Future[list[bytes | None]]]] = []
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:_MAX_BATCH], self.waiting[_MAX_BATCH:]
                keys = [key for wanted, _ in batch for key in wanted]
                try:
                    values = await self.read(keys)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for wanted, future in batch:
                    end = start + len(wanted)
                    if not future.done():  # its reader may have gone meanwhile
                        future.set_result(values[start:end])
                    start = end
            batch = []
        except BaseException:
            # Cancelled (the loop is closing): no reader waits for ever.
            for _, future in [*batch, *self.waiting]:
                future.cancel()
            self.waiting = []
            raise
        finally:
            self.running = False
