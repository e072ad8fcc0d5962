"""Server-sent events: the wire format. Pure: no I/O, no templates.

The streams that use it are in ``progress_ui.streaming.sse_stream``. A progress message
is unnamed (htmx 2 with ``sse-swap="message"`` and htmx 4 both swap it) and
carries the rendered fragments of a snapshot, one ``data:`` line per line::

    id: 1764273600000
    retry: 2000
    data: <hx-partial id="progress-...-build" hx-swap="innerMorph">...</hx-partial>
    data: <hx-partial id="progress-...-test" hx-swap="innerMorph">...</hx-partial>

The stream ends with ``event: done`` / ``data: done`` once the session has finished
or vanished (after its final state was sent as a normal message), so ``sse-close`` /
``hx-sse:close`` can close it and the browser does not reconnect. A stream that
reaches ``MAX_STREAM_DURATION`` ends without ``done``: the browser reconnects with
``Last-Event-ID`` and gets the current state at once. A sync (WSGI) stream, which
holds a server thread, ends at its shorter limit with ``event: progress-poll``, then
``done``: ``progress_ui.js`` polls the component from then on. If the stream fails, the
error is logged and the client gets ``event: progress-error`` with a safe message,
then ``done``. (Not ``event: error``: EventSource would hand that to ``onerror``,
which htmx treats as a broken connection.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from progress_ui.conf import current as current_settings
from progress_ui.core.snapshot import SessionSnapshot

CONTENT_TYPE = "text/event-stream; charset=utf-8"
#: A comment line: ignored by EventSource, keeps proxies from closing an idle stream.
HEARTBEAT = ": ping\n\n"
DONE_EVENT = "done"
ERROR_EVENT = "progress-error"
#: "Poll instead of streaming": a named event (htmx 4 dispatches it on the
#: element, htmx 2 on its EventSource; neither swaps it).
POLL_EVENT = "progress-poll"
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
    head = f"id: {int(event_id)}\n"
    if event is not None:
        _check_field(event)
        head = f"event: {event}\n{head}"
    if retry is not None:
        head += f"retry: {int(retry)}\n"
    return head + _data_block(payload)


#: The last payload formatted, and its ``data:`` lines: every viewer of a change
#: is sent the same payload object, so it is split and prefixed once.
_last_block: tuple[str, str] = ("", "data: \n\n")


def _data_block(payload: str) -> str:
    global _last_block
    last = _last_block
    if last[0] is payload:
        return last[1]
    block = "".join(f"data: {line}\n" for line in data_lines(payload)) + "\n"
    _last_block = (payload, block)
    return block


#: The last payload encoded for :meth:`SSEFormatter.snapshot_bytes`, and its
#: ``data:`` block in UTF-8: the viewers of a change share it.
_last_encoded: tuple[str, bytes] = ("", b"data: \n\n")


def _encoded_block(payload: str) -> bytes:
    global _last_encoded
    last = _last_encoded
    if last[0] is payload:
        return last[1]
    block = _data_block(payload).encode()
    _last_encoded = (payload, block)
    return block


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


def format_poll(*, event_id: int) -> str:
    """``event: progress-poll``: the stream ends before the session has, and the
    client should poll from now on (send :func:`format_done` after it, so that
    browsers without ``progress_ui.js`` do not reconnect either)."""
    return format_message("poll", event_id=event_id, event=POLL_EVENT)


def message_head(message: str) -> tuple[str | None, int | None]:
    """The ``event:`` name and ``id:`` of a message formatted here (None for a
    field it does not have, e.g. both for a heartbeat)."""
    event: str | None = None
    for line in message.split("\n", 2)[:2]:
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("id: "):
            return event, parse_last_event_id(line[len("id: ") :])
    return event, None


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


class SSEFormatter:
    """Formats one stream's messages: increasing ids, ``retry:`` on the first
    message only. ``render`` turns a snapshot into the message payload."""

    def __init__(
        self,
        render: Render,
        *,
        last_event_id: str | None = None,
        retry_ms: int | None = None,
        now: float | None = None,
    ) -> None:
        self._next_id = first_event_id(last_event_id, now)
        self._retry = current_settings().SSE_RETRY_MS if retry_ms is None else retry_ms
        self.render = render
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

    def snapshot_bytes(self, payload: str) -> bytes:
        """:meth:`snapshot` of a rendered ``payload``, encoded (UTF-8): the
        ``data:`` lines are encoded once for every viewer sent the same payload."""
        event_id, retry = self._id_and_retry()
        head = b"id: %d\n" % event_id
        if retry is not None:
            head += b"retry: %d\n" % retry
        return head + _encoded_block(payload)

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
