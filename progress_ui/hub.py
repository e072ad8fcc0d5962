"""One poller per session, shared by every async viewer in the event loop.

Without it each open stream reads the cache every ``POLL_INTERVAL``: with a
thousand viewers that is ten thousand cache calls a second, each a thread hop.
Here the first viewer of a session starts a poller task that reads the session
once per interval and publishes changed snapshots; every viewer (a
:class:`Subscription`) waits on the same event and applies the usual emit/stop
rule (``follow.FollowRule``) to what was published, keeping its own heartbeat
and maximum duration. The poller stops when the session settles or vanishes, or
when its last viewer leaves. Viewers that render with the same function share
one rendering per published snapshot (:meth:`Subscription.render`).

Everything here runs on one event loop; :func:`get_hub` keeps one hub per loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING

from django.utils.translation import get_language

from . import store
from .conf import current as current_settings
from .follow import FollowRule, afollow_snapshots
from .push import ChangeFeed
from .snapshot import SessionSnapshot
from .status import ReportedStatus
from .validation import log_id

if TYPE_CHECKING:
    from .session import ProgressSession, SessionState

logger = logging.getLogger("progress_ui")

#: (cache alias, session id, poll interval): viewers asking for another cache or
#: interval get their own poller.
ChannelKey = tuple[str, str, float]


#: Longest a new poller waits for Redis to confirm its subscription before it
#: starts by polling (the confirmation switches it to push later).
_SUBSCRIBE_WAIT = 0.5


class PollerError(RuntimeError):
    """The shared poller of a session failed (the cause is chained and logged)."""


class _Channel:
    """The poller of one session and what it last published."""

    def __init__(
        self, hub: Hub, key: ChannelKey, session: ProgressSession, interval: float
    ) -> None:
        self.hub = hub
        self.key = key
        self.session = session
        self.interval = interval
        #: Bumped on every publication; viewers compare it with what they saw.
        self.version = 0
        self.latest: SessionSnapshot | None = None
        self.error: BaseException | None = None
        #: Replaced on every publication, so one ``set()`` wakes every waiting viewer.
        self.changed = asyncio.Event()
        self.subscribers = 0
        #: Reads of the session by this poller (for tests and monitoring).
        self.reads = 0
        #: Renderings of ``_memo_of`` by (function, id of the previous snapshot).
        self._memo_of: SessionSnapshot | None = None
        self._memo: dict[tuple[object, int, str | None], tuple[SessionSnapshot | None, str]] = {}
        #: Set by the change feed when the session changed (and by the idle timer).
        self._wake = asyncio.Event()
        self.feed = hub.feed_for()
        self.push_channel = store.change_channel(session.session_id) if self.feed else None
        # A fresh context: the poller outlives the request that started it, and must
        # not keep that request's thread-sensitive executor (or other state) alive.
        self.task = asyncio.get_running_loop().create_task(
            self._poll(), name=f"progress_ui poller {session.session_id}",
            context=contextvars.Context(),
        )  # fmt: skip

    def _publish(self, snapshot: SessionSnapshot | None) -> None:
        if snapshot is not None:
            self.latest = snapshot
        self.version += 1
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def _poll(self) -> None:
        # The shared rule without a deadline: publish changes, stop when final.
        follower = FollowRule(self.session, max_duration=math.inf)
        try:
            if self.feed is not None and self.push_channel is not None:
                await self.feed.watch(self.push_channel, self._wake.set, timeout=_SUBSCRIBE_WAIT)
            state: SessionState | None = None
            while True:
                pushed = self._pushed()
                if state is None or self._wake.is_set() or not pushed:
                    # Cleared before reading: a change published during the read
                    # wakes the next round.
                    self._wake.clear()
                    state = await self.session.aread_state()
                    self.reads += 1
                else:
                    # Woken by the clock only: the stored state is unchanged, but
                    # a running bar's curve moves on (and its worker may be gone).
                    state = await self.session.acheck_runners(state)
                for item in follower.step(self.session.snapshot_of(state)):
                    if item is not None:  # heartbeats are per viewer
                        self._publish(item)
                if follower.done:
                    return
                await self._sleep(pushed)
        except Exception as exc:
            logger.exception(
                "progress_ui: poller of session %s failed", log_id(self.session.session_id)
            )
            self.error = exc
            # New viewers get a fresh poller; current ones end with an error event.
            self.hub._forget(self)
            self._publish(None)
        finally:
            if self.feed is not None and self.push_channel is not None:
                self.feed.unwatch(self.push_channel, self._wake.set)

    def _pushed(self) -> bool:
        return (
            self.feed is not None
            and self.push_channel is not None
            and self.feed.watching(self.push_channel)
        )

    async def _sleep(self, pushed: bool) -> None:
        """Until the next round: a poll interval, or with push, until a change is
        published (a running bar still redraws every interval, without a read;
        an idle session is read again only every ``HEARTBEAT_INTERVAL``, in case
        it expired)."""
        moving = self.latest is not None and any(
            task["status"] == ReportedStatus.RUNNING for task in self.latest["tasks"].values()
        )
        idle = pushed and not moving
        timeout = current_settings().HEARTBEAT_INTERVAL if idle else self.interval
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            if idle:
                self._wake.set()  # the idle re-read

    def render(
        self,
        snapshot: SessionSnapshot,
        fn: Callable[..., str],
        previous: SessionSnapshot | None = None,
        language: str | None = None,
    ) -> str:
        """``fn(snapshot, previous)`` (``fn(snapshot)`` without ``previous``),
        computed once per published snapshot for all viewers that pass the same
        ``fn`` (compared with ``==``: a bound method of a per-request object is a
        different ``fn`` for every viewer), the same ``previous`` (viewers that
        keep up were all sent the snapshot published before) and the same
        ``language`` (viewers of one session may read different ones)."""
        if self._memo_of is not snapshot:
            self._memo_of, self._memo = snapshot, {}
        key = (fn, id(previous), language)
        found = self._memo.get(key)
        if found is not None and found[0] is previous:
            return found[1]
        payload = fn(snapshot) if previous is None else fn(snapshot, previous)
        self._memo[key] = (previous, payload)
        return payload


class Subscription:
    """One viewer: an async iterator of changed snapshots and ``None`` heartbeats,
    ending after the final snapshot, or silently at ``max_duration``."""

    def __init__(
        self,
        hub: Hub,
        session: ProgressSession,
        interval: float,
        max_duration: float | None,
    ) -> None:
        self._hub = hub
        self._session = session
        self._interval = interval
        self._max_duration = max_duration
        self._channel: _Channel | None = None
        #: The viewer's language, looked up once (a lookup per message is not free).
        self._language: str | None = None

    def __aiter__(self) -> AsyncIterator[SessionSnapshot | None]:
        return self._iterate()

    def render(
        self,
        snapshot: SessionSnapshot,
        fn: Callable[..., str],
        previous: SessionSnapshot | None = None,
    ) -> str:
        """``fn(snapshot[, previous])``, shared with the other viewers of the session."""
        if self._channel is None:
            return fn(snapshot) if previous is None else fn(snapshot, previous)
        return self._channel.render(snapshot, fn, previous, self._language)

    async def _iterate(self) -> AsyncIterator[SessionSnapshot | None]:
        # Joining here (not in __init__) means an iterator never started never
        # holds a poller.
        channel = self._channel = self._hub._join(self._session, self._interval)
        self._language = get_language()
        follower = FollowRule(self._session, self._max_duration)
        seen = 0
        try:
            while True:
                if channel.error is not None:
                    raise PollerError("the session's poller failed") from channel.error
                if channel.version != seen and channel.latest is not None:
                    seen = channel.version
                    for item in follower.step(channel.latest):
                        yield item
                    if follower.done:
                        return
                    continue
                changed = channel.changed
                wake = min(follower.last_emit + follower.heartbeat, follower.deadline)
                try:
                    async with asyncio.timeout(max(0.0, wake - time.monotonic())):
                        await changed.wait()
                    continue
                except TimeoutError:
                    pass
                # Nothing new: a heartbeat may be due, or the deadline passed.
                if follower.last is None:
                    if time.monotonic() >= follower.deadline:
                        return
                    continue
                for item in follower.step(follower.last):
                    yield item
                if follower.done:
                    return
        finally:
            self._hub._leave(channel)


class Hub:
    """The pollers of one event loop, by session."""

    def __init__(self) -> None:
        self._channels: dict[ChannelKey, _Channel] = {}
        self._feeds: dict[str, ChangeFeed] = {}

    def feed_for(self) -> ChangeFeed | None:
        """The change feed of the Redis server behind the cache, or None when
        changes cannot be pushed (``PUSH`` off, or a cache other than Redis)."""
        if not current_settings().PUSH:
            return None
        url = store.push_server()
        if url is None:
            return None
        feed = self._feeds.get(url)
        if feed is None:
            feed = self._feeds[url] = ChangeFeed(url)
        return feed

    def subscribe(
        self,
        session: ProgressSession,
        *,
        poll_interval: float | None = None,
        max_duration: float | None = None,
    ) -> Subscription:
        """A viewer of ``session``: iterate it (``async for``) to receive snapshots.
        ``max_duration`` defaults to ``MAX_STREAM_DURATION``."""
        interval = current_settings().POLL_INTERVAL if poll_interval is None else poll_interval
        return Subscription(self, session, interval, max_duration)

    def _join(self, session: ProgressSession, interval: float) -> _Channel:
        key = (current_settings().CACHE_ALIAS, session.session_id, float(interval))
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _Channel(self, key, session, interval)
        channel.subscribers += 1
        return channel

    def _leave(self, channel: _Channel) -> None:
        channel.subscribers -= 1
        if channel.subscribers <= 0:
            channel.task.cancel()
            self._forget(channel)

    def _forget(self, channel: _Channel) -> None:
        if self._channels.get(channel.key) is channel:
            del self._channels[channel.key]

    def channel(self, session_id: str) -> _Channel | None:
        """The live poller of ``session_id`` in this loop, if any (for tests and
        monitoring)."""
        return next((c for k, c in self._channels.items() if k[1] == session_id), None)

    @property
    def sessions(self) -> int:
        """Sessions polled right now."""
        return len(self._channels)

    @property
    def viewers(self) -> int:
        return sum(c.subscribers for c in self._channels.values())


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def follow(
    session: ProgressSession,
    *,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    shared: bool = True,
) -> AsyncIterable[SessionSnapshot | None]:
    """The async snapshots of ``session`` for one viewer: from the loop's shared
    poller (``shared=True``), or from a poller of its own. Call it inside the
    event loop (the hub is per loop)."""
    if shared:
        return get_hub().subscribe(session, poll_interval=poll_interval, max_duration=max_duration)
    return afollow_snapshots(session, poll_interval=poll_interval, max_duration=max_duration)


def get_hub() -> Hub:
    """The hub of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub
