"""Change notifications from Redis pub/sub, for the hub's pollers.

On Django's Redis cache every write publishes on the session's channel
(``progress_ui.engine.store.redis``). A :class:`ChangeFeed` holds one pub/sub
connection per event loop and Redis server, subscribes to the channels of the
sessions the hub follows, and calls their wake-up function when a change is
published: a viewer hears of a change in about a millisecond instead of at the
next poll, and a session nobody changes costs no reads.

Polling stays the safety net. A channel counts as pushed only once Redis has
confirmed its subscription (:meth:`ChangeFeed.watching`); until then, and
whenever the connection is lost, the pollers poll. Losing the connection wakes
every watcher (each reads at once and goes back to polling); once resubscribed,
each is woken again and reads once, so a change published while nobody listened
is never missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from progress_ui.engine import store
from progress_ui.streaming.outage import cache_answered, cache_failed

Wake = Callable[[], None]

#: Seconds between two attempts to reconnect (doubling up to the maximum).
_FIRST_RETRY, _MAX_RETRY = 0.1, 5.0
#: Seconds between pings of an idle feed, and of silence after which it is lost.
_PING_EVERY, _SILENCE = 1.0, 3.0


class ChangeFeed:
    """One Redis pub/sub connection, shared by every session followed in a loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._watchers: dict[str, set[Wake]] = {}
        #: Channels whose subscription Redis has confirmed on the live connection.
        self._confirmed: set[str] = set()
        self._waiting: dict[str, list[asyncio.Future[bool]]] = {}
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        #: Times the connection was lost (for tests and monitoring).
        self.losses = 0

    def watching(self, channel: str) -> bool:
        """True when a change published on ``channel`` reaches its watchers now."""
        return channel in self._confirmed

    async def watch(self, channel: str, wake: Wake, *, timeout: float) -> bool:
        """Call ``wake()`` for every change published on ``channel`` from now on.
        True once Redis confirmed the subscription (within ``timeout`` seconds);
        False means: poll, ``wake`` is called when the subscription comes through."""
        new = channel not in self._watchers
        self._watchers.setdefault(channel, set()).add(wake)
        if channel in self._confirmed:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(channel, []).append(waiter)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"progress_ui change feed {self.url}"
            )
        elif new and self._pubsub is not None:
            with contextlib.suppress(Exception):  # the reader notices a broken link
                await self._pubsub.subscribe(channel)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            return False

    def unwatch(self, channel: str, wake: Wake) -> None:
        watchers = self._watchers.get(channel)
        if watchers is None:
            return
        watchers.discard(wake)
        if watchers:
            return
        del self._watchers[channel]
        self._confirmed.discard(channel)
        if not self._watchers and self._task is not None:
            # Nobody left: close the connection (the next viewer reopens it).
            self._task.cancel()
            self._task = None
        elif self._pubsub is not None:
            pubsub = self._pubsub
            asyncio.get_running_loop().create_task(_quietly(pubsub.unsubscribe(channel)))

    async def _run(self) -> None:
        delay = _FIRST_RETRY
        while True:
            # The cache's own connection options (OPTIONS in CACHES), from the
            # store's one client factory.
            client: Any = store.pubsub_client(self.url)
            pubsub: Any = client.pubsub()
            try:
                if not self._watchers:
                    return
                first = list(self._watchers)
                async with asyncio.timeout(_SILENCE):
                    await pubsub.subscribe(*first)  # connects
                # From here on watch() subscribes new channels itself; those that
                # came while connecting are subscribed now (no await in between).
                self._pubsub = pubsub
                delay = _FIRST_RETRY
                cache_answered()
                late = [c for c in self._watchers if c not in first]
                if late:
                    await pubsub.subscribe(*late)
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.losses += 1
                # Its reconnects fail as long as the outage lasts: one warning
                # per outage for the process (streaming.outage), not per attempt.
                cache_failed(exc, "the Redis change feed (viewers poll until it is back)")
                self._lost()
            finally:
                self._pubsub = None
                self._confirmed.clear()
                await _quietly(pubsub.aclose())
                await _quietly(client.aclose())
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY)

    async def _listen(self, pubsub: Any) -> None:
        """Dispatch what Redis sends until the connection fails, or Redis stops
        answering: a partitioned or frozen server closes nothing, so the feed
        pings it every ``_PING_EVERY`` seconds and gives up after ``_SILENCE``
        without a word (then the pollers poll, and find out for themselves)."""
        heard = time.monotonic()

        async def read() -> None:
            nonlocal heard
            while True:
                message = await pubsub.get_message(timeout=None)
                heard = time.monotonic()
                if message is not None:
                    self._dispatch(message)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while True:
                done, _ = await asyncio.wait({reader}, timeout=_PING_EVERY)
                if reader in done:
                    reader.result()  # raises what ended it
                    return
                if time.monotonic() - heard > _SILENCE:
                    raise ConnectionError(f"Redis did not answer for {_SILENCE:.0f} s")
                async with asyncio.timeout(_PING_EVERY):
                    await pubsub.ping()  # the pong arrives through read()
        finally:
            reader.cancel()

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        kind = message["type"]
        if kind == "subscribe" and channel in self._watchers:
            self._confirmed.add(channel)
            for waiter in self._waiting.pop(channel, []):
                if not waiter.done():
                    waiter.set_result(True)
        elif kind != "message":
            return
        # A change, or a (re)subscription: either way, read once.
        for wake in list(self._watchers.get(channel, ())):
            wake()

    def _lost(self) -> None:
        self._confirmed.clear()
        for waiters in self._waiting.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(False)
        self._waiting.clear()
        for watchers in list(self._watchers.values()):
            for wake in list(watchers):
                wake()


async def _quietly(awaitable: Any) -> None:
    with contextlib.suppress(Exception):
        await awaitable
