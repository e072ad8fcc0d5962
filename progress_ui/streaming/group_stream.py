"""One SSE stream for several sessions, so a page showing many opens one connection.

A browser opens at most 6 HTTP/1.1 connections per origin: with one stream per
session, a page's 7th session (and every other request of that page) waits until
a stream ends. A group stream follows each of its sessions as a single-session
stream does (through the hub of the loop it runs on, ``progress_ui.streaming.hub``)
and merges them into one stream in the same wire format (``progress_ui.wire.sse``):

- every change of any session is one unnamed message whose payload is that
  session's ``<hx-partial>`` regions (``sse_stream.default_render``: the first
  message of each session on a connection holds all its regions, later ones what
  changed). Region ids are globally unique, so one element with
  ``hx-swap="none"`` applies the partials of every session;
- a heartbeat comment when nothing was sent for ``HEARTBEAT_INTERVAL``;
- ``done`` once every session has settled (finished or vanished).

When one session's follower stops before its session settled (the stream's
maximum duration), the group stream ends without ``done``: the browser
reconnects and gets every session's full state at once. A failure is handled as
``sse_stream`` does (``sse_stream.last_messages``): a cache outage
(``CacheUnavailable``) just ends the stream (the browser reconnects after
``retry:``); anything else is logged and ends it with the safe
``progress-error`` event, then ``done``.

A change waiting while the client reads slowly is replaced by the session's next
one (each session keeps only its latest unsent snapshot): memory stays bounded,
and the partials are computed against what this client was last sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from progress_ui.conf import current as current_settings
from progress_ui.core.snapshot import SessionSnapshot, is_settled
from progress_ui.core.validation import log_id
from progress_ui.engine.follow import closing
from progress_ui.engine.session import ProgressSession
from progress_ui.streaming.hub import Subscription, follow
from progress_ui.streaming.sse_stream import SSEStream, default_render, last_messages, payload
from progress_ui.wire.sse import Render, SSEFormatter

__all__ = ["group_stream"]


class _Group:
    """The state of one group stream: what each session was last sent, the ids
    and ``retry:`` of the one formatter, when the stream last said anything."""

    def __init__(self, sessions: Sequence[ProgressSession], formatter: SSEFormatter) -> None:
        self.ids = [session.session_id for session in sessions]
        self.formatter = formatter
        self.sent: list[SessionSnapshot | None] = [None] * len(sessions)
        self.heartbeat_interval = current_settings().HEARTBEAT_INTERVAL
        self.last_output = time.monotonic()

    def message(self, index: int, snapshot: SessionSnapshot, subscription: Subscription) -> str:
        """The message for a change of session ``index``."""
        render = self.formatter.render
        text = payload(subscription, render, snapshot, self.sent[index])
        self.sent[index] = snapshot
        self.last_output = time.monotonic()
        return self.formatter.snapshot(snapshot, text)

    def heartbeat_due_in(self) -> float:
        return max(0.0, self.last_output + self.heartbeat_interval - time.monotonic())

    def heartbeat(self) -> str:
        self.last_output = time.monotonic()
        return self.formatter.heartbeat()

    def settled(self, index: int) -> bool:
        last = self.sent[index]
        return last is not None and is_settled(last)

    def end(self) -> list[str]:
        """The last message: ``done`` if every session has settled, else none
        (the client reconnects and is sent the full state again)."""
        if all(self.settled(i) for i in range(len(self.ids))):
            return [self.formatter.done()]
        return []

    def failed(self, index: int, exc: Exception) -> list[str]:
        """The last messages after following session ``index`` failed with ``exc``."""
        name = f"group SSE stream (session {log_id(self.ids[index])})"
        return last_messages(exc, self.formatter, name)


def group_stream(
    sessions: Sequence[ProgressSession],
    *,
    last_event_id: str | None = None,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    render: Render = default_render,
) -> SSEStream:
    """SSE messages for all of ``sessions`` in one stream (see the module
    docstring), each session followed through the hub of the loop this runs on.
    Nothing happens until the first message is requested. Served under
    ``release_stream_threads``, the sessions' pollers write the messages to the
    client themselves (``streaming.direct``), as for one session."""
    return SSEStream(
        list(sessions), _group_messages, last_event_id, poll_interval, max_duration, render
    )


async def _group_messages(
    sessions: Sequence[ProgressSession],
    last_event_id: str | None,
    poll_interval: float | None,
    max_duration: float | None,
    render: Render,
) -> AsyncIterator[str]:
    """:func:`group_stream`, every message yielded."""
    group = _Group(sessions, SSEFormatter(render, last_event_id=last_event_id))
    count = len(sessions)
    # Written by the followers, read here: the latest unsent snapshot of each
    # session, whether its follower has stopped, and how it failed.
    latest: list[SessionSnapshot | None] = [None] * count
    stopped = [False] * count
    errors: list[Exception | None] = [None] * count
    wake = asyncio.Event()
    subscriptions = [
        follow(s, poll_interval=poll_interval, max_duration=max_duration) for s in sessions
    ]

    async def follow_one(index: int) -> None:
        try:
            async with closing(subscriptions[index]) as items:
                async for item in items:
                    if item is not None:  # the group sends its own heartbeats
                        latest[index] = item
                        wake.set()
        except Exception as exc:
            errors[index] = exc
        finally:
            stopped[index] = True
            wake.set()

    loop = asyncio.get_running_loop()
    followers = [
        loop.create_task(follow_one(i), name=f"progress_ui group follower {i}")
        for i in range(count)
    ]
    try:
        while True:
            # Cleared before looking: a change published from here on wakes the wait.
            wake.clear()
            for index in range(count):
                snapshot = latest[index]
                if snapshot is None:
                    continue
                latest[index] = None
                try:
                    message = group.message(index, snapshot, subscriptions[index])
                except Exception as exc:  # rendering failed
                    errors[index] = exc
                    break
                yield message
            failure = next(((i, exc) for i, exc in enumerate(errors) if exc is not None), None)
            if failure is not None:
                for message in group.failed(*failure):
                    yield message
                return
            over = [stopped[i] and latest[i] is None for i in range(count)]
            if all(over) or any(over[i] and not group.settled(i) for i in range(count)):
                break
            try:
                async with asyncio.timeout(group.heartbeat_due_in()):
                    await wake.wait()
            except TimeoutError:
                yield group.heartbeat()
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
    for message in group.end():
        yield message
