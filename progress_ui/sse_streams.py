"""The SSE streams of a session: followed snapshots, rendered and formatted.

Both follow the session through a hub (``progress_ui.hub``) by default: the
async one (ASGI) through its event loop's, the sync one (WSGI) through the hub of
the process's background loop (``progress_ui.hub_thread``), so all viewers of a
session in a process share one poller and one rendering per change. Both end
with ``done`` once the session has settled (see ``progress_ui.sse`` for the wire
format). A failure is logged and ends the stream with a safe ``progress-error``
event, then ``done``; but a cache that cannot be reached
(``store.CacheUnavailable``) may come back, so then the stream just ends and the
browser reconnects after ``retry:``. Under WSGI a stream that reaches its
maximum duration asks the page to poll instead (:func:`poll_after_max_duration`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import aclosing

from . import sse
from .follow import Followed, follow_snapshots
from .hub import Subscription, follow
from .hub_thread import iterate_in_loop
from .rendering import render_partials
from .session import ProgressSession
from .snapshot import SessionSnapshot, is_settled
from .sse import Render, SSEFormatter
from .store import CacheUnavailable
from .validation import log_id

logger = logging.getLogger("progress_ui")


def default_render(snapshot: SessionSnapshot, previous: SessionSnapshot | None = None) -> str:
    """The payload of a progress message: the component's ``<hx-partial>`` regions;
    with ``previous`` (what this viewer was sent last), only those that changed."""
    return str(render_partials(snapshot, previous))


def _payload(
    render: Render,
    snapshot: SessionSnapshot,
    previous: SessionSnapshot | None,
    shared: Subscription | None,
) -> str:
    """The payload for one viewer. Only the default rendering sends changes alone
    (a custom ``render`` gets every snapshot whole); viewers of one hub poller share
    one rendering per snapshot and previous one (every viewer that keeps up)."""
    since = previous if render is default_render else None
    if shared is not None:
        return shared.render(snapshot, render, since)
    return default_render(snapshot, since) if render is default_render else render(snapshot)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, CacheUnavailable) or isinstance(exc.__cause__, CacheUnavailable)


def _end_after(exc: Exception, session_id: str, formatter: SSEFormatter) -> list[str]:
    """The last messages of a stream that failed with ``exc``."""
    if _is_transient(exc):
        logger.warning("progress_ui: SSE stream of session %s paused: %s", log_id(session_id), exc)
        return []  # no done: the browser reconnects and resumes
    logger.exception("progress_ui: SSE stream of session %s failed", log_id(session_id))
    return formatter.error()


def sse_messages(
    session_id: str, items: Iterable[Followed], formatter: SSEFormatter
) -> Iterator[str]:
    """Format ``items`` (snapshots, ``None`` for a heartbeat) as SSE messages, then
    ``done`` if the last snapshot was settled: the first message holds every
    region, the next ones what changed (see :func:`default_render`). Errors end
    the stream with a safe error event; the traceback goes to the ``progress_ui``
    logger."""
    last: SessionSnapshot | None = None
    try:
        for item in items:
            if item is None:
                yield formatter.heartbeat()
            else:
                payload = _payload(formatter.render, item, last, None)
                last = item
                yield formatter.snapshot(item, payload)
    except Exception as exc:
        yield from _end_after(exc, session_id, formatter)
        return
    if last is not None and is_settled(last):
        yield formatter.done()


async def asse_messages(
    session_id: str,
    items: AsyncIterable[Followed],
    formatter: SSEFormatter,
) -> AsyncGenerator[str, None]:
    """Async :func:`sse_messages`. When ``items`` is a hub :class:`Subscription`,
    its ``render`` memo is asked first: viewers that pass the same render function
    share one rendering per published snapshot (and previous one)."""
    last: SessionSnapshot | None = None
    shared = items if isinstance(items, Subscription) else None
    iterator = aiter(items)
    try:
        async for item in iterator:
            if item is None:
                yield formatter.heartbeat()
            else:
                payload = _payload(formatter.render, item, last, shared)
                last = item
                yield formatter.snapshot(item, payload)
    except Exception as exc:
        for message in _end_after(exc, session_id, formatter):
            yield message
        return
    finally:
        # Leave the hub now, not when the garbage collector finalises the iterator.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    if last is not None and is_settled(last):
        yield formatter.done()


def sse_stream(
    session: ProgressSession,
    *,
    last_event_id: str | None = None,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    render: Render = default_render,
    shared: bool = True,
) -> Iterator[str]:
    """SSE messages for ``session``, for a sync (WSGI) server. With ``shared=True``
    (the default) the stream runs on this process's hub loop
    (``progress_ui.hub_thread``): every sync viewer of the session shares one
    poller and one rendering per change. ``shared=False`` polls the cache for
    this viewer alone, in the calling thread."""
    if shared:
        return iterate_in_loop(
            lambda: asse_stream(
                session,
                last_event_id=last_event_id,
                poll_interval=poll_interval,
                max_duration=max_duration,
                render=render,
            )
        )
    formatter = SSEFormatter(render, last_event_id=last_event_id)
    items = follow_snapshots(session, poll_interval=poll_interval, max_duration=max_duration)
    return sse_messages(session.session_id, items, formatter)


def poll_after_max_duration(messages: Iterator[str], max_duration: float) -> Iterator[str]:
    """``messages``, then ``progress-poll`` and ``done`` if they stopped without
    ``done`` because ``max_duration`` passed (not after a cache outage: such a
    stream ends early, and its browser reconnects). For a WSGI server, where an
    open stream holds a thread: rather than reconnect to a new stream forever,
    ``progress_ui.js`` polls the component from then on."""
    started = time.monotonic()
    last_id: int | None = None
    finished = False
    try:
        for message in messages:
            event, event_id = sse.message_head(message)
            finished = event == sse.DONE_EVENT
            last_id = last_id if event_id is None else event_id
            yield message
    finally:
        close = getattr(messages, "close", None)
        if close is not None:
            close()  # at once (the client may have gone): it leaves the hub
    if not finished and time.monotonic() - started >= max_duration:
        poll_id = sse.first_event_id(None if last_id is None else str(last_id))
        yield sse.format_poll(event_id=poll_id)
        yield sse.format_done(event_id=poll_id + 1)


async def asse_stream(
    session: ProgressSession,
    *,
    last_event_id: str | None = None,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    render: Render = default_render,
    shared: bool = True,
) -> AsyncIterator[str]:
    """Async SSE messages for ``session``. With ``shared=True`` (the default) every
    viewer of the session in this event loop shares one poller (``progress_ui.hub``);
    ``shared=False`` polls for this viewer alone. Nothing happens until the first
    message is requested."""
    formatter = SSEFormatter(render, last_event_id=last_event_id)
    items = follow(session, poll_interval=poll_interval, max_duration=max_duration, shared=shared)
    async with aclosing(asse_messages(session.session_id, items, formatter)) as stream:
        async for message in stream:
            yield message
