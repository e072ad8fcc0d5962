"""The SSE stream of one session: followed snapshots, rendered and formatted.

One async pipeline (:func:`sse_stream`), fed by the hub of the event loop it runs
on (``progress_ui.streaming.hub``), so every viewer of a session in a process
shares one poller and one rendering per change: under ASGI the server's loop,
under WSGI the process's background loop (``progress_ui.streaming.wsgi_loop``
runs this same pipeline for a worker thread). The stream ends with ``done`` once
the session has settled (see ``progress_ui.wire.sse`` for the wire format). A
failure is logged and ends the stream with a safe ``progress-error`` event, then
``done``; but a cache that cannot be reached (``store.CacheUnavailable``) may
come back, so then the stream just ends and the browser reconnects after
``retry:`` (:func:`last_messages`, shared with the group stream; the process
logs the outage once, ``progress_ui.streaming.outage``). When the server shuts
down (``progress_ui.streaming.shutdown``) the stream ends with a bare ``retry:``
(:func:`reconnect_hint`): the browser reconnects, to another process. Under WSGI a
stream that reaches its maximum duration asks the page to poll instead
(:func:`poll_after_max_duration`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

from progress_ui.conf import current as current_settings
from progress_ui.core.snapshot import SessionSnapshot, is_settled
from progress_ui.core.validation import log_id
from progress_ui.engine.follow import aclose, closing
from progress_ui.engine.session import ProgressSession
from progress_ui.render.components import render_partials
from progress_ui.streaming.direct import Send
from progress_ui.streaming.hub import PollerError, ServerStopping, Subscription, follow, get_hub
from progress_ui.streaming.outage import cache_failed, is_transient
from progress_ui.wire import sse
from progress_ui.wire.sse import Render, SSEFormatter

logger = logging.getLogger("progress_ui")


def default_render(snapshot: SessionSnapshot, previous: SessionSnapshot | None = None) -> str:
    """The payload of a progress message: the component's ``<hx-partial>`` regions;
    with ``previous`` (what this viewer was sent last), only those that changed."""
    return str(render_partials(snapshot, previous))


def payload(
    subscription: Subscription,
    render: Render,
    snapshot: SessionSnapshot,
    previous: SessionSnapshot | None,
) -> str:
    """The payload for one viewer. Only the default rendering sends changes alone
    (a custom ``render`` gets every snapshot whole); the viewers of one hub
    poller share one rendering per snapshot and previous one (every viewer that
    keeps up)."""
    since = previous if render is default_render else None
    return subscription.render(snapshot, render, since)


def reconnect_hint() -> str:
    """The last message of a stream that the server ends while it shuts down: a
    bare ``retry:`` (``SSE_RETRY_MS``), so the browser connects again that soon,
    to a server process that is not stopping."""
    return f"retry: {int(current_settings().SSE_RETRY_MS)}\n\n"


def last_messages(exc: BaseException, formatter: SSEFormatter, stream: str) -> list[str]:
    """The last messages of the SSE stream ``stream`` (named in the log) that
    failed with ``exc``: none after a cache outage (the browser reconnects and
    resumes), the reconnect hint when the server shuts down, else the safe error
    event and ``done`` (the traceback is logged)."""
    if isinstance(exc, ServerStopping):
        return [reconnect_hint()]
    if is_transient(exc):
        # The process says it once per outage (streaming.outage), not per stream.
        cache_failed(exc, stream)
        return []
    if isinstance(exc, PollerError):
        # The poller logged the traceback, once for all its viewers.
        logger.error("progress_ui: %s failed: its poller failed (logged above)", stream)
    else:
        # Not always inside the except block (a group follower's failure is
        # reported later): pass the exception for its traceback.
        logger.error("progress_ui: %s failed", stream, exc_info=exc)
    return formatter.error()


def sse_stream(
    session: ProgressSession,
    *,
    last_event_id: str | None = None,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    render: Render = default_render,
) -> SSEStream:
    """SSE messages for ``session``: the first holds every region, the next ones
    what changed (see :func:`default_render`); a heartbeat comment when idle;
    ``done`` once it settled. Nothing happens until the first message is
    requested (the hub is the one of the loop that asks)."""
    return SSEStream([session], _messages, last_event_id, poll_interval, max_duration, render)


#: The yielded pipeline of an :class:`SSEStream`: ``(sessions, last_event_id,
#: poll_interval, max_duration, render)`` -> every message.
Pipeline = Callable[
    [Sequence[ProgressSession], str | None, float | None, float | None, Render],
    AsyncIterator[str],
]


class SSEStream:
    """The async iterator :func:`sse_stream` and ``group_stream`` return. The
    server side of a view (``streaming.limits.HeldAsyncStream``) may
    :meth:`open_with_send` it with the request's ASGI ``send`` instead
    (``streaming.direct``): the sessions' pollers then write the progress
    messages to ``send`` themselves, and the iterator only yields the last ones
    (``done``, an error, the reconnect hint). A stream iterated by anything else
    (a view that wraps it, a test) yields every message, from ``pipeline``."""

    def __init__(
        self,
        sessions: Sequence[ProgressSession],
        pipeline: Pipeline,
        last_event_id: str | None,
        poll_interval: float | None,
        max_duration: float | None,
        render: Render,
    ) -> None:
        self._pipeline = pipeline
        self._args = (sessions, last_event_id, poll_interval, max_duration, render)
        self._messages: AsyncIterator[str] | None = None

    def open_with_send(self, send: Send | None) -> AsyncIterator[str]:
        """The messages, written to ``send`` if given, else all yielded (call
        once, before iterating)."""
        if send is None:
            return self._pipeline(*self._args)
        return _direct_messages(send, *self._args)

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        if self._messages is None:
            self._messages = self.open_with_send(None)
        return await anext(self._messages)

    async def aclose(self) -> None:
        if self._messages is not None:
            await aclose(self._messages)


def stream_name(sessions: Sequence[ProgressSession]) -> str:
    """How the log names the SSE stream of ``sessions``."""
    if len(sessions) == 1:
        return f"SSE stream of session {log_id(sessions[0].session_id)}"
    return "group SSE stream (sessions " + ", ".join(log_id(s.session_id) for s in sessions) + ")"


async def _direct_messages(
    send: Send,
    sessions: Sequence[ProgressSession],
    last_event_id: str | None,
    poll_interval: float | None,
    max_duration: float | None,
    render: Render,
) -> AsyncIterator[str]:
    """:class:`SSEStream` with the progress messages written to ``send`` by the
    sessions' pollers (``Hub.serve_direct``); yields the last ones only."""
    formatter = SSEFormatter(render, last_event_id=last_event_id)
    try:
        settled = await get_hub().serve_direct(
            sessions,
            send,
            formatter,
            render,
            diff=render is default_render,
            poll_interval=poll_interval,
            max_duration=max_duration,
        )
    except Exception as exc:
        for message in last_messages(exc, formatter, stream_name(sessions)):
            yield message
        return
    if settled:
        yield formatter.done()


async def _messages(
    sessions: Sequence[ProgressSession],
    last_event_id: str | None,
    poll_interval: float | None,
    max_duration: float | None,
    render: Render,
) -> AsyncIterator[str]:
    """:func:`sse_stream`, every message yielded."""
    (session,) = sessions
    formatter = SSEFormatter(render, last_event_id=last_event_id)
    subscription = follow(session, poll_interval=poll_interval, max_duration=max_duration)
    last: SessionSnapshot | None = None
    async with closing(subscription) as items:
        try:
            async for item in items:
                if item is None:
                    yield formatter.heartbeat()
                    continue
                message = formatter.snapshot(item, payload(subscription, render, item, last))
                last = item
                yield message
        except Exception as exc:
            for message in last_messages(exc, formatter, stream_name(sessions)):
                yield message
            return
    if last is not None and is_settled(last):
        yield formatter.done()


async def poll_after_max_duration(
    messages: AsyncIterator[str], max_duration: float
) -> AsyncIterator[str]:
    """``messages``, then ``progress-poll`` and ``done`` if they stopped without
    ``done`` because ``max_duration`` passed (not after a cache outage: such a
    stream ends early, and its browser reconnects). For a WSGI server, where an
    open stream holds a thread: rather than reconnect to a new stream forever,
    ``progress_ui.js`` polls the component from then on."""
    started = time.monotonic()
    last_id: int | None = None
    finished = False
    async with closing(messages) as stream:
        async for message in stream:
            event, event_id = sse.message_head(message)
            finished = event == sse.DONE_EVENT
            last_id = last_id if event_id is None else event_id
            yield message
    if not finished and time.monotonic() - started >= max_duration:
        poll_id = sse.first_event_id(None if last_id is None else str(last_id))
        yield sse.format_poll(event_id=poll_id)
        yield sse.format_done(event_id=poll_id + 1)
