"""Server-sent events: the wire format (pure functions) and the SSE streams of a session.

A progress message is unnamed (htmx 2 with ``sse-swap="message"`` and htmx 4 both
swap it) and carries ``render_partials(snapshot)``, one ``data:`` line per line::

    id: 1764273600000
    retry: 2000
    data: <hx-partial id="progress-...-build" hx-swap="innerMorph">...</hx-partial>
    data: <hx-partial id="progress-...-test" hx-swap="innerMorph">...</hx-partial>

The stream ends with ``event: done`` / ``data: done`` once the session has finished
or vanished (after its final state was sent as a normal message), so ``sse-close`` /
``hx-sse:close`` can close it and the browser does not reconnect. A stream that
reaches ``MAX_STREAM_DURATION`` ends without ``done``: the browser reconnects with
``Last-Event-ID`` and gets the current state at once. If the stream fails, the
error is logged and the client gets ``event: progress-error`` with a safe message,
then ``done``. (Not ``event: error``: EventSource would hand that to ``onerror``,
which htmx treats as a broken connection.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
)
from contextlib import aclosing
from typing import TYPE_CHECKING

from . import snapshot as snap
from .conf import current as current_settings
from .snapshot import SessionSnapshot

if TYPE_CHECKING:
    from .session import ProgressSession

logger = logging.getLogger("progress_ui")

CONTENT_TYPE = "text/event-stream; charset=utf-8"
#: A comment line: ignored by EventSource, keeps proxies from closing an idle stream.
HEARTBEAT = ": ping\n\n"
DONE_EVENT = "done"
ERROR_EVENT = "progress-error"
#: Longest ``Last-Event-ID`` we parse (an int64 has 19 digits); longer is garbage.
_MAX_ID_DIGITS = 19

Render = Callable[[SessionSnapshot], str]


# -- wire format (pure) --------------------------------------------------------


def data_lines(payload: str) -> list[str]:
    """``payload`` split into the lines of ``data:`` fields. CRLF and CR count as
    line breaks (as they do for EventSource), so no field ever holds a raw CR/LF."""
    return payload.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def format_message(
    payload: str, *, event_id: int, retry: int | None = None, event: str | None = None
) -> str:
    """One SSE message: ``event:`` (if named), ``id:``, ``retry:`` (if given), one
    ``data:`` line per payload line, and the blank line that dispatches it."""
    lines = []
    if event is not None:
        _check_field(event)
        lines.append(f"event: {event}")
    lines.append(f"id: {int(event_id)}")
    if retry is not None:
        lines.append(f"retry: {int(retry)}")
    lines.extend(f"data: {line}" for line in data_lines(payload))
    return "\n".join(lines) + "\n\n"


def _check_field(value: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"SSE field values cannot hold CR, LF or NUL: {value!r}")


def format_done(*, event_id: int, retry: int | None = None) -> str:
    """The closing message: ``event: done`` with a ``data:`` line (without data,
    htmx 2 never fires the event)."""
    return format_message(DONE_EVENT, event_id=event_id, retry=retry, event=DONE_EVENT)


def format_error(message: str, *, event_id: int, retry: int | None = None) -> str:
    """A named ``progress-error`` event carrying ``message`` (which must be safe
    to show: never an exception's text)."""
    return format_message(message, event_id=event_id, retry=retry, event=ERROR_EVENT)


def parse_last_event_id(value: str | None) -> int | None:
    """The integer in a ``Last-Event-ID`` header, or None for anything else
    (missing, empty, signs, spaces, non-ASCII digits, absurd lengths)."""
    if not value or len(value) > _MAX_ID_DIGITS or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def first_event_id(last_event_id: str | None, now: float | None = None) -> int:
    """The id of a stream's first message: above the client's ``Last-Event-ID`` and
    at least the current time in milliseconds, so ids keep increasing across
    reconnects (and across servers whose clocks roughly agree)."""
    clock = int((time.time() if now is None else now) * 1000)
    last = parse_last_event_id(last_event_id)
    return clock if last is None else max(last + 1, clock)


class SSEWriter:
    """Formats one stream's messages: increasing ids, ``retry:`` on the first
    message only. ``render`` turns a snapshot into the message payload."""

    def __init__(
        self,
        *,
        last_event_id: str | None = None,
        retry_ms: int | None = None,
        render: Render | None = None,
        now: float | None = None,
    ) -> None:
        self._next_id = first_event_id(last_event_id, now)
        self._retry = current_settings().SSE_RETRY_MS if retry_ms is None else retry_ms
        self.render: Render = render or default_render
        self.sent_messages = 0

    def _id_and_retry(self) -> tuple[int, int | None]:
        event_id, self._next_id = self._next_id, self._next_id + 1
        retry = self._retry if self.sent_messages == 0 and self._retry > 0 else None
        self.sent_messages += 1
        return event_id, retry

    def snapshot(self, data: SessionSnapshot, payload: str | None = None) -> str:
        """The progress message for ``data`` (``payload`` if already rendered)."""
        text = self.render(data) if payload is None else payload
        event_id, retry = self._id_and_retry()
        return format_message(text, event_id=event_id, retry=retry)

    def heartbeat(self) -> str:
        return HEARTBEAT

    def done(self) -> str:
        event_id, retry = self._id_and_retry()
        return format_done(event_id=event_id, retry=retry)

    def error(self, message: str | None = None) -> list[str]:
        """The safe error event followed by ``done``."""
        text = current_settings().GENERIC_ERROR_MESSAGE if message is None else message
        event_id, retry = self._id_and_retry()
        return [format_error(text, event_id=event_id, retry=retry), self.done()]


def default_render(data: SessionSnapshot) -> str:
    # Looked up at call time: the front-end owns rendering.render_partials.
    from . import rendering

    return str(rendering.render_partials(data))


# -- streams -------------------------------------------------------------------


def _log_failure(session_id: str) -> None:
    logger.exception("progress_ui: SSE stream of session %s failed", session_id)


def sse_from(
    session_id: str, items: Iterable[SessionSnapshot | None], writer: SSEWriter
) -> Iterator[str]:
    """Format ``items`` (snapshots, ``None`` for a heartbeat) as SSE messages, then
    ``done`` if the last snapshot was final. Errors end the stream with a safe
    error event; the traceback goes to the ``progress_ui`` logger."""
    last: SessionSnapshot | None = None
    try:
        for item in items:
            if item is None:
                yield writer.heartbeat()
            else:
                last = item
                yield writer.snapshot(item)
    except Exception:
        _log_failure(session_id)
        yield from writer.error()
        return
    if last is not None and snap.is_finished(last):
        yield writer.done()


async def asse_from(
    session_id: str,
    items: AsyncIterable[SessionSnapshot | None],
    writer: SSEWriter,
    render: Callable[[SessionSnapshot, Render], str] | None = None,
) -> AsyncGenerator[str, None]:
    """Async :func:`sse_from`. ``render(snapshot, fn)`` may supply a shared
    rendering of the snapshot (the hub renders once for all its viewers)."""
    last: SessionSnapshot | None = None
    iterator = aiter(items)
    try:
        async for item in iterator:
            if item is None:
                yield writer.heartbeat()
            else:
                last = item
                payload = None if render is None else render(item, writer.render)
                yield writer.snapshot(item, payload)
    except Exception:
        _log_failure(session_id)
        for message in writer.error():
            yield message
        return
    finally:
        # Leave the hub now, not when the garbage collector finalises the iterator.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    if last is not None and snap.is_finished(last):
        yield writer.done()


def sse_stream(
    session: ProgressSession,
    *,
    last_event_id: str | None = None,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    render: Render | None = None,
) -> Iterator[str]:
    """SSE messages for ``session`` (sync, one cache read per poll for this viewer:
    for WSGI servers, where each stream holds a thread anyway)."""
    from .streaming import snapshots

    writer = SSEWriter(last_event_id=last_event_id, render=render)
    items = snapshots(session, poll_interval=poll_interval, max_duration=max_duration)
    return sse_from(session.session_id, items, writer)


async def asse_stream(
    session: ProgressSession,
    *,
    last_event_id: str | None = None,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    render: Render | None = None,
    shared: bool = True,
) -> AsyncIterator[str]:
    """Async SSE messages for ``session``. With ``shared=True`` (the default) every
    viewer of the session in this event loop shares one poller (``progress_ui.hub``)
    and one rendering per change; ``shared=False`` polls for this viewer alone.
    Nothing happens until the first message is requested."""
    from .hub import Subscription, follow

    writer = SSEWriter(last_event_id=last_event_id, render=render)
    items = follow(session, poll_interval=poll_interval, max_duration=max_duration, shared=shared)
    # A shared poller also shares one rendering per change among its viewers.
    shared_render = items.render if isinstance(items, Subscription) else None
    async with aclosing(asse_from(session.session_id, items, writer, shared_render)) as stream:
        async for message in stream:
            yield message
