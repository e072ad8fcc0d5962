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
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from django.utils.translation import get_language

from progress_ui.conf import current as current_settings
from progress_ui.core.snapshot import SessionSnapshot, is_settled
from progress_ui.core.status import ReportedStatus
from progress_ui.core.validation import log_id
from progress_ui.engine import store
from progress_ui.engine.follow import FollowRule
from progress_ui.streaming import shutdown
from progress_ui.streaming.direct import DirectViewer, Send
from progress_ui.streaming.outage import cache_answered, cache_failed, is_transient
from progress_ui.streaming.push import ChangeFeed
from progress_ui.streaming.renderings import Renderings
from progress_ui.streaming.threads import sync_work_on
from progress_ui.wire.sse import SSEFormatter

if TYPE_CHECKING:
    from progress_ui.engine.session import ProgressSession, SessionState

logger = logging.getLogger("progress_ui")

#: (cache alias, session id, poll interval): viewers asking for another cache or
#: interval get their own poller.
ChannelKey = tuple[str, str, float]


#: Longest a new poller waits for Redis to confirm its subscription before it
#: starts by polling (the confirmation switches it to push later).
_SUBSCRIBE_WAIT = 0.5
#: Reads a poller may make in a row before it waits a poll interval per read.
_READ_BURST = 2.0


class PollerError(RuntimeError):
    """The shared poller of a session failed (the cause is chained and logged)."""


class ServerStopping(Exception):
    """The server is shutting down (``progress_ui.streaming.shutdown``): the
    stream ends with a reconnect hint, and its client connects again elsewhere."""


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
        #: Reads allowed now (a token bucket: see ``_sleep``), as of ``_tokens_at``.
        self._tokens = _READ_BURST
        self._tokens_at = time.monotonic()
        #: The viewers this channel writes to itself (``Hub.serve_direct``), with
        #: this session's index among each one's sessions.
        self.direct: dict[DirectViewer, int] = {}
        #: One rendering per published snapshot, function, previous and language.
        self.render = Renderings().render
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
        if self.direct:
            self._deliver(snapshot)

    def _deliver(self, snapshot: SessionSnapshot | None) -> None:
        """Write a publication to the direct viewers, one loop for all of them:
        a change, or (None) the end of every one of them."""
        if snapshot is None:
            end = self.end_reason()
            for viewer in list(self.direct):
                viewer.finish(end)
            return
        settled, now = is_settled(snapshot), time.monotonic()
        for viewer, index in list(self.direct.items()):
            viewer.deliver(index, snapshot, settled, now)

    def end_reason(self) -> BaseException | None:
        """Why every viewer ends now: the server stops, or the poller failed."""
        if self.hub.stopping:
            return ServerStopping("the server is shutting down")
        if self.error is not None:
            failed = PollerError("the session's poller failed")
            failed.__cause__ = self.error
            return failed
        return None

    async def _poll(self) -> None:
        # Sync reads (caches other than Redis) on the hub's own thread: see
        # progress_ui.streaming.threads.
        async with sync_work_on(self.hub.sync_thread):
            await self._follow()

    async def _follow(self) -> None:
        # The shared rule without a deadline: publish changes, stop when final.
        follower = FollowRule(self.session, max_duration=math.inf)
        try:
            if self.feed is not None and self.push_channel is not None:
                await self.feed.watch(self.push_channel, self._wake.set, timeout=_SUBSCRIBE_WAIT)
            state: SessionState | None = None
            #: When the session was first found missing (None: it is there).
            missing_since: float | None = None
            while True:
                pushed = self._pushed()
                if state is None or self._wake.is_set() or not pushed or missing_since:
                    # Cleared before reading: a change published during the read
                    # wakes the next round.
                    self._wake.clear()
                    self._tokens -= 1
                    state = await self.session.amark_lost_workers(await self.session.aread_state())
                    self.reads += 1
                    cache_answered()
                else:
                    # Woken by the clock only: the stored state is unchanged, but
                    # a running bar's curve moves on (and its worker may be gone).
                    state = await self.session.amark_lost_workers(state)
                snapshot = self.session.snapshot_of(state)
                if snapshot is None:
                    # Gone: expired, or lost by a store that restarted empty. A job
                    # that starts (or writes) later stores the session again, so
                    # look for MISSING_GRACE before saying it is no longer there.
                    now = time.monotonic()
                    missing_since = now if missing_since is None else missing_since
                    if now - missing_since < current_settings().MISSING_GRACE:
                        await self._sleep(pushed=False)
                        continue
                missing_since = None
                for item in follower.step(snapshot):
                    if item is not None:  # heartbeats are per viewer
                        self._publish(item)
                if follower.done:
                    return
                await self._sleep(pushed)
        except Exception as exc:
            name = f"poller of session {log_id(self.session.session_id)}"
            if is_transient(exc):
                # One warning per outage for the whole process, not one per poller.
                cache_failed(exc, name)
            else:
                logger.exception("progress_ui: %s failed", name)
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
        it expired), but never sooner than an interval after the last read."""
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
        # At most one read per poll interval on average (``POLL_INTERVAL`` for
        # a poller that polls less often: it only waits for pushes), so a writer
        # that stores faster reaches its viewers as one message per interval,
        # the newest state. A token bucket rather than a fixed spacing: a writer
        # that stores exactly once per interval, give or take some jitter, is
        # not cut down to one message every other interval.
        spacing = min(self.interval, current_settings().POLL_INTERVAL)
        now = time.monotonic()
        self._tokens = min(_READ_BURST, self._tokens + (now - self._tokens_at) / spacing)
        self._tokens_at = now
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) * spacing)


class Subscription:
    """One viewer: an async iterator of changed snapshots and ``None`` heartbeats,
    ending after the final snapshot, or silently at ``max_duration``."""

    def __init__(
        self,
        hub: Hub | None,
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
        # holds a poller, and that the hub is the one of the loop that iterates.
        hub = self._hub = get_hub() if self._hub is None else self._hub
        channel = self._channel = hub._join(self._session, self._interval)
        self._language = get_language()
        follower = FollowRule(self._session, self._max_duration)
        seen = 0
        try:
            while True:
                if hub.stopping:
                    raise ServerStopping("the server is shutting down")
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
            hub._leave(channel)


class Hub:
    """The pollers of one event loop, by session."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = asyncio.get_running_loop() if loop is None else loop
        self.loop = self._loop
        #: True once the server began shutting down: every viewer ends.
        self.stopping = False
        self._channels: dict[ChannelKey, _Channel] = {}
        self._feeds: dict[str, ChangeFeed] = {}
        #: Where the pollers' thread-sensitive sync calls run (its one thread
        #: starts on first use: never with the Redis cache, read natively).
        self.sync_thread = ThreadPoolExecutor(1, thread_name_prefix="progress_ui hub sync")
        #: Heartbeats of the direct viewers, while there are some.
        self._heartbeats: asyncio.Task[None] | None = None
        self.direct_viewers = 0

    def stop_streams(self) -> None:
        """End every viewer of this hub, now and from now on, with
        :class:`ServerStopping` (any thread: see ``streaming.shutdown``)."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop)

    def _stop(self) -> None:
        self.stopping = True
        for channel in list(self._channels.values()):
            channel._publish(None)  # wakes its viewers, which see ``stopping``

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

    async def serve_direct(
        self,
        sessions: Sequence[ProgressSession],
        send: Send,
        formatter: SSEFormatter,
        render: Callable[..., str],
        *,
        diff: bool,
        poll_interval: float | None = None,
        max_duration: float | None = None,
    ) -> bool:
        """Serve one SSE viewer of ``sessions`` (one, or a group) by writing its
        messages to its ASGI ``send`` from the sessions' pollers
        (``streaming.direct``), formatted by ``formatter`` and rendered by
        ``render`` (``render(snapshot, previous)`` with ``diff``, else
        ``render(snapshot)``), with a heartbeat when idle. Returns once the
        stream ends: True when every session had settled, False when
        ``max_duration`` (by default ``MAX_STREAM_DURATION``) passed first or
        the client left; or raises why it ended (:class:`ServerStopping`,
        :class:`PollerError`, or what rendering raised)."""
        conf = current_settings()
        if self.stopping:
            raise ServerStopping("the server is shutting down")
        interval = conf.POLL_INTERVAL if poll_interval is None else poll_interval
        duration = conf.MAX_STREAM_DURATION if max_duration is None else max_duration
        channels = [self._join(session, interval) for session in sessions]
        viewer = DirectViewer(
            channels, send, formatter, render, diff, get_language(), max(0.0, duration)
        )
        for index, channel in enumerate(channels):
            channel.direct[viewer] = index
        self.direct_viewers += 1
        if self._heartbeats is None:
            self._heartbeats = self._loop.create_task(
                self._beat(), name="progress_ui heartbeats", context=contextvars.Context()
            )
        try:
            failed = next((c for c in channels if c.error is not None), None)
            if failed is not None or self.stopping:
                viewer.finish((failed or channels[0]).end_reason())
            else:
                viewer.catch_up()  # what the pollers already know
            reason = await viewer.ended
            if reason is not None:
                raise reason
            return viewer.all_settled
        finally:
            viewer.close()
            self.direct_viewers -= 1
            for channel in channels:
                channel.direct.pop(viewer, None)
                self._leave(channel)

    async def _beat(self) -> None:
        """Heartbeats for the direct viewers idle for ``HEARTBEAT_INTERVAL``: one
        task for all of them, not a timer per viewer."""
        try:
            while self.direct_viewers:
                interval = current_settings().HEARTBEAT_INTERVAL
                await asyncio.sleep(min(1.0, interval / 4))
                now = time.monotonic()
                for channel in list(self._channels.values()):
                    for viewer in list(channel.direct):
                        viewer.heartbeat(now, interval)
        finally:
            self._heartbeats = None

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
        """Viewers following a session right now (direct viewers included)."""
        return sum(c.subscribers for c in self._channels.values())


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def follow(
    session: ProgressSession,
    *,
    poll_interval: float | None = None,
    max_duration: float | None = None,
) -> Subscription:
    """The snapshots of ``session`` for one viewer, from the shared poller of the
    event loop that iterates them (``max_duration`` defaults to
    ``MAX_STREAM_DURATION``). Nothing happens until the iteration starts."""
    interval = current_settings().POLL_INTERVAL if poll_interval is None else poll_interval
    return Subscription(None, session, interval, max_duration)


def get_hub() -> Hub:
    """The hub of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(loop)
        shutdown.register(hub)
    return hub
