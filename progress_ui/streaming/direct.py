"""The ASGI ``send`` of the request being served, for streams that write their
messages straight to it.

Django's ASGI handler sends a streaming response's headers, then pulls the body
from the response's async iterator, one chunk at a time: for an SSE stream each
message wakes that viewer's request task and passes through the response
wrapper, the stream's generators and a timer. With a thousand viewers of
sessions changing ten times a second that machinery, not the bytes, is what the
server spends its time on. So when :func:`progress_ui.release_stream_threads`
wraps Django's own handler, it keeps each HTTP request's ``send`` here
(:func:`current_send`), and an SSE stream (of one session or a group), once
Django has sent its headers, hands ``send`` to the hub: each session's poller
then writes each change to every viewer itself, one loop over the viewers per
change (``streaming.hub``), while the stream's generator waits for the end.
The response's status, headers and access checks are Django's as before; the
body bytes are the same.

Only where nothing can stand between the wrapper and Django's handler (the
wrapper wraps an ``ASGIHandler`` itself, so no ASGI middleware could rewrite
the body it sends) and where tasks can start eagerly (Python 3.12: a write that
does not have to wait costs no scheduling). Elsewhere streams are served as
before.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextvars import ContextVar, Token
from typing import Any, Protocol

from progress_ui.core.snapshot import SessionSnapshot, is_settled
from progress_ui.wire.sse import HEARTBEAT, SSEFormatter

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Python 3.12 starts tasks eagerly (``asyncio.Task(..., eager_start=True)``).
SUPPORTED = sys.version_info >= (3, 12)

_send: ContextVar[Send | None] = ContextVar("progress_ui_asgi_send", default=None)


def keep_send(send: Send) -> Token[Send | None]:
    """Keep ``send`` as the current request's (reset it with the token)."""
    return _send.set(send)


def forget_send(token: Token[Send | None]) -> None:
    _send.reset(token)


def current_send() -> Send | None:
    """The ASGI ``send`` of the request served in this context, if a stream may
    write to it directly (see the module docstring), else None."""
    return _send.get() if SUPPORTED else None


class ViewerChannel(Protocol):
    """What a :class:`DirectViewer` needs of its session's channel (the hub's)."""

    #: The newest snapshot the channel published.
    latest: SessionSnapshot | None

    def render(
        self,
        snapshot: SessionSnapshot,
        fn: Callable[..., str],
        previous: SessionSnapshot | None = None,
        language: str | None = None,
        *,
        activate: bool = False,
    ) -> str: ...


class DirectViewer:
    """One SSE viewer of one session, or of several (a group stream), whose
    messages its sessions' channels write to the viewer's ASGI ``send``
    themselves (``streaming.direct``): the changed snapshots, and a heartbeat
    when idle, until every session has settled (then :attr:`ended`), the
    stream's maximum duration passes, or a channel ends it.

    Each channel knows the viewer's index for it (:meth:`deliver`). A write
    starts eagerly: one the transport takes at once is done without a task
    switch. One that must wait (a client reading slowly) keeps running as a
    task; meanwhile this viewer skips changes, and when it is done it is sent,
    in one write, the newest snapshot of each session that changed meanwhile,
    against the last one it was sent of that session."""

    __slots__ = (
        "_deadline",
        "_end",
        "busy",
        "channels",
        "diff",
        "ended",
        "formatter",
        "language",
        "last",
        "last_emit",
        "loop",
        "render",
        "send",
        "settled",
    )

    def __init__(
        self,
        channels: Sequence[ViewerChannel],
        send: Send,
        formatter: SSEFormatter,
        render: Callable[..., str],
        diff: bool,
        language: str | None,
        max_duration: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.channels = channels
        self.send = send
        self.formatter = formatter
        self.render = render
        #: Sent only what changed since its last message (the default rendering).
        self.diff = diff
        self.language = language
        #: What each session was last sent, and whether that had settled.
        self.last: list[SessionSnapshot | None] = [None] * len(channels)
        self.settled = [False] * len(channels)
        self.last_emit = time.monotonic()
        self.busy: asyncio.Task[bool] | None = None
        #: Resolved when the stream ends: None, or why (ServerStopping, PollerError,
        #: a rendering that failed).
        self.ended: asyncio.Future[BaseException | None] = loop.create_future()
        self._end: tuple[BaseException | None] | None = None
        self._deadline = loop.call_later(max_duration, self.finish, None)

    @property
    def all_settled(self) -> bool:
        """Every session's last message showed it settled (the stream ends with ``done``)."""
        return all(self.settled)

    def deliver(self, index: int, snapshot: SessionSnapshot, settled: bool, now: float) -> None:
        """Send ``snapshot`` of session ``index`` (published by its channel)
        unless it was sent already; end once every session has settled."""
        if self._end is not None or snapshot is self.last[index] or self.busy is not None:
            return  # a busy viewer is sent the newest snapshots once its write is done
        body = self._message(index, snapshot, settled)
        if body is not None:
            self._send(body, now)

    def _message(self, index: int, snapshot: SessionSnapshot, settled: bool) -> bytes | None:
        """The message for ``snapshot`` of session ``index``, now counted as sent;
        None if rendering failed (the stream ends with the error)."""
        try:
            previous = self.last[index] if self.diff else None
            payload = self.channels[index].render(
                snapshot, self.render, previous, self.language, activate=True
            )
            body = self.formatter.snapshot_bytes(payload)
        except Exception as exc:
            self.finish(exc)
            return None
        self.last[index], self.settled[index] = snapshot, settled
        return body

    def _send(self, body: bytes, now: float) -> None:
        """Write progress messages; the stream ends after them once every
        session has settled."""
        self.last_emit = now
        self._write(body)
        if self.all_settled:
            self.finish(None)

    def heartbeat(self, now: float, interval: float) -> None:
        if (
            self._end is None
            and self.busy is None
            and self.formatter.sent_messages
            and now - self.last_emit >= interval
        ):
            self.last_emit = now
            self._write(_HEARTBEAT)

    def _write(self, body: bytes) -> None:
        message = {"type": "http.response.body", "body": body, "more_body": True}
        task = asyncio.Task(  # type: ignore[call-arg]
            _write(self.send, message), loop=self.loop, eager_start=True
        )
        if not task.done():
            self.busy = task
            task.add_done_callback(self._written)
        elif task.result():
            self.finish(None)  # the client went away: Django's handler ends the request

    def _written(self, task: asyncio.Task[bool]) -> None:
        self.busy = None
        if task.cancelled() or task.result():
            self.finish(None)
        elif self._end is not None:
            self.finish(self._end[0])
        else:
            self.catch_up()

    def catch_up(self) -> None:
        """Send, in one write, the newest snapshot of every session not sent yet."""
        bodies = []
        for index, channel in enumerate(self.channels):
            latest = channel.latest
            if latest is not None and latest is not self.last[index]:
                body = self._message(index, latest, is_settled(latest))
                if body is None:
                    return
                bodies.append(body)
        if bodies:
            self._send(b"".join(bodies), time.monotonic())

    def finish(self, reason: BaseException | None) -> None:
        """End this viewer's stream (once a write in progress is done)."""
        if self._end is None:
            self._end = (reason,)
            self._deadline.cancel()
        if self.busy is None and not self.ended.done():
            self.ended.set_result(self._end[0])

    def close(self) -> None:
        self._deadline.cancel()
        if self._end is None:
            self._end = (None,)


#: A heartbeat comment, encoded.
_HEARTBEAT = HEARTBEAT.encode()


async def _write(send: Send, message: dict[str, object]) -> bool:
    """``send(message)``; True when the client has gone (the write failed)."""
    try:
        await send(message)
    except Exception:
        return True
    return False
