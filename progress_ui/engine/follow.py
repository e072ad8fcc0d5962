"""Following a session in the cache until it settles, and its NDJSON lines.

:class:`FollowRule` holds the rule every follower applies to fresh reads (emit a
snapshot only when it changed, a heartbeat when idle, stop after the final one);
:func:`afollow_snapshots` polls the cache with it for one viewer, and the hub
(``progress_ui.streaming.hub``) shares one poller among many viewers with it.

:func:`ndjson_lines` is the one NDJSON pipeline (``progress_ui.wire.ndjson``),
for ``ProgressSession.stream()``/``astream()`` and the NDJSON view alike. It is
async; sync callers (``stream()``, ``follow_snapshots``) run it with
:func:`iterate_blocking`. :func:`closing` is the one place a stream is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from progress_ui.conf import current as current_settings
from progress_ui.core.snapshot import SessionSnapshot, expired_snapshot, is_settled
from progress_ui.core.validation import log_id
from progress_ui.exceptions import CacheUnavailable
from progress_ui.wire.ndjson import NDJSONFormatter, format_retry

T = TypeVar("T")
logger = logging.getLogger("progress_ui")
#: Yielded instead of a snapshot when nothing changed for HEARTBEAT_INTERVAL.
HEARTBEAT = None

#: What a follower yields: a changed snapshot, or ``HEARTBEAT``.
Followed = SessionSnapshot | None
#: When following stops: after the first snapshot for which this is true.
Until = Callable[[SessionSnapshot], bool]


class SnapshotSource(Protocol):
    """What following needs of a session (``ProgressSession`` is one)."""

    @property
    def session_id(self) -> str: ...

    @property
    def tasks(self) -> dict[str, str]: ...

    def read(self) -> SessionSnapshot | None: ...

    async def aread(self) -> SessionSnapshot | None: ...


class FollowRule:
    """The emit/stop rule shared by every follower, sync or async."""

    def __init__(
        self, source: SnapshotSource, max_duration: float | None, until: Until = is_settled
    ) -> None:
        conf = current_settings()
        self.source = source
        self.until = until
        self.last: SessionSnapshot | None = None
        self.started = time.monotonic()
        self.last_emit = self.started
        self.heartbeat = conf.HEARTBEAT_INTERVAL
        self.deadline = self.started + (
            conf.MAX_STREAM_DURATION if max_duration is None else max_duration
        )
        self.done = False

    def step(self, current: SessionSnapshot | None) -> list[Followed]:
        """What to yield for a fresh read (``HEARTBEAT`` in the list is a heartbeat)."""
        now = time.monotonic()
        if current is None:  # expired or deleted while followed
            self.done = True
            return [expired_snapshot(self.source.session_id, self.source.tasks)]
        out: list[Followed] = []
        if current != self.last:
            out.append(current)
            self.last, self.last_emit = current, now
        elif now - self.last_emit >= self.heartbeat:
            out.append(HEARTBEAT)
            self.last_emit = now
        if self.until(current) or now >= self.deadline:
            self.done = True
        return out


async def afollow_snapshots(
    source: SnapshotSource,
    *,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    until: Until = is_settled,
    missing_grace: float = 0.0,
) -> AsyncIterator[Followed]:
    """Changed snapshots (and heartbeats) of ``source`` until ``until`` (by default:
    the session settled), expiry, or ``max_duration`` (default
    ``MAX_STREAM_DURATION``), reading every ``poll_interval``: the follower of one
    viewer (the hub, ``progress_ui.streaming.hub``, shares one among many).

    A session that disappears is looked for during ``missing_grace`` seconds
    before the expired snapshot ends the stream (``ProgressSession.stream()``
    passes ``MISSING_GRACE``, as the hub waits): a cache that restarted empty
    loses a queued session, which its job stores again when it starts."""
    conf = current_settings()
    interval = conf.POLL_INTERVAL if poll_interval is None else poll_interval
    rule = FollowRule(source, max_duration, until)
    missing_since: float | None = None
    while True:
        current = await source.aread()
        if current is None:
            now = time.monotonic()
            missing_since = now if missing_since is None else missing_since
            if now - missing_since < missing_grace and now < rule.deadline:
                await asyncio.sleep(interval)
                continue
        else:
            missing_since = None
        for item in rule.step(current):
            yield item
        if rule.done:
            return
        await asyncio.sleep(interval)


def follow_snapshots(
    source: SnapshotSource,
    *,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    until: Until = is_settled,
) -> Iterator[Followed]:
    """:func:`afollow_snapshots` for sync code, in the calling thread
    (:func:`iterate_blocking`)."""
    return iterate_blocking(
        afollow_snapshots(
            read_in_place(source),
            poll_interval=poll_interval,
            max_duration=max_duration,
            until=until,
        )
    )


# -- NDJSON ------------------------------------------------------------------------


async def ndjson_lines(session_id: str, items: AsyncIterable[Followed]) -> AsyncIterator[str]:
    """``items`` (snapshots, ``HEARTBEAT``) as NDJSON lines (``progress_ui.wire.ndjson``):
    the one NDJSON pipeline, fed by the hub for ``progress_ui:ndjson`` and by
    :func:`afollow_snapshots` for ``ProgressSession.stream()``. A cache that
    cannot be reached is not a failure: one WARNING (no traceback), and the
    stream ends with the retry line (``{"retry": <ms>}``, ``SSE_RETRY_MS``), as
    the NDJSON view's does. Any other failure is logged and ends the stream with
    the safe error line. ``items`` is closed when this ends."""
    formatter = NDJSONFormatter()
    async with closing(items) as iterator:
        try:
            async for item in iterator:
                yield formatter.heartbeat() if item is HEARTBEAT else formatter.snapshot(item)
        except Exception as exc:
            if not _is_outage(exc):
                logger.exception(
                    "progress_ui: NDJSON stream of session %s failed", log_id(session_id)
                )
                for line in formatter.error():
                    yield line
                return
            logger.warning(
                "progress_ui: NDJSON stream of session %s interrupted: the progress cache "
                "cannot be reached (%s); it ends with the retry line",
                log_id(session_id),
                exc.__cause__ or exc,
            )
            yield format_retry()


def _is_outage(exc: BaseException) -> bool:
    """The cache could not be reached (directly, or as the cause of a poller's
    failure): something that passes, not a bug."""
    return isinstance(exc, CacheUnavailable) or isinstance(exc.__cause__, CacheUnavailable)


# -- running and closing streams ---------------------------------------------------


async def aclose(stream: object) -> None:
    """Close an async iterator now, if it can be closed: the one place streams are
    closed, so a follower leaves its hub at once, not when it is collected."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


@asynccontextmanager
async def closing(items: AsyncIterable[T]) -> AsyncIterator[AsyncIterator[T]]:
    """``async with closing(items) as iterator``: iterate ``items``, closed on exit
    (see :func:`aclose`)."""
    iterator = aiter(items)
    try:
        yield iterator
    finally:
        await aclose(iterator)


class _ReadInPlace:
    """``source`` whose ``aread()`` is its blocking ``read()`` run in a plain
    worker thread of the loop (``asyncio.to_thread``): for an event loop that
    serves one sync caller (:func:`iterate_blocking`). Not ``sync_to_async``: a
    thread-sensitive read would be sent back to the very thread that waits for
    it (a deadlock). Not in the loop's own thread either: Django refuses database
    access (the database cache) where an event loop runs."""

    def __init__(self, source: SnapshotSource) -> None:
        self._source = source

    @property
    def session_id(self) -> str:
        return self._source.session_id

    @property
    def tasks(self) -> dict[str, str]:
        return self._source.tasks

    def read(self) -> SessionSnapshot | None:
        return self._source.read()

    async def aread(self) -> SessionSnapshot | None:
        return await asyncio.to_thread(self._source.read)


def read_in_place(source: SnapshotSource) -> SnapshotSource:
    """``source``, read with its blocking ``read()`` even by async code (see
    :class:`_ReadInPlace` and :func:`iterate_blocking`)."""
    return _ReadInPlace(source)


def iterate_blocking(stream: AsyncIterator[T]) -> Iterator[T]:
    """The items of ``stream`` for sync code: each step runs on an event loop of
    this iterator's own, in the calling thread (which blocks, as a sync stream
    does). For streams that only wait on their own sleeps and reads, such as
    :func:`afollow_snapshots` of a :func:`read_in_place` source: a WSGI view that
    shares a hub uses ``progress_ui.streaming.wsgi_loop`` instead. Raises
    ``RuntimeError`` when called where an event loop is running."""

    async def step() -> T:
        return await anext(stream)

    with asyncio.Runner() as runner:
        try:
            while True:
                try:
                    item = runner.run(step())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            runner.run(aclose(stream))
