"""One SSE stream for several sessions, so a page showing many opens one connection.

A browser opens at most 6 HTTP/1.1 connections per origin: with one stream per
session, a page's 7th session (and every other request of that page) waits until
a stream ends. A group stream follows each of its sessions as a single-session
stream does (through the hub, ``progress_ui.hub.follow``) and merges them into one
stream in the same wire format (``progress_ui.sse``):

- every change of any session is one unnamed message whose payload is that
  session's ``<hx-partial>`` regions (``sse_streams.default_render``: the first
  message of each session on a connection holds all its regions, later ones what
  changed). Region ids are globally unique, so one element with
  ``hx-swap="none"`` applies the partials of every session;
- a heartbeat comment when nothing was sent for ``HEARTBEAT_INTERVAL``;
- ``done`` once every session has settled (finished or vanished).

When one session's follower stops before its session settled (the stream's
maximum duration), the group stream ends without ``done``: the browser
reconnects and gets every session's full state at once. A failure is handled as
``sse_streams`` does: a cache outage (``CacheUnavailable``) just ends the stream
(the browser reconnects after ``retry:``); anything else is logged and ends it
with the safe ``progress-error`` event, then ``done``.

A change waiting while the client reads slowly is replaced by the session's next
one (each session keeps only its latest unsent snapshot): memory stays bounded,
and the partials are computed against what this client was last sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence

from .conf import current as current_settings
from .follow import Followed, FollowRule
from .hub import Subscription, follow
from .hub_thread import iterate_in_loop
from .session import ProgressSession
from .snapshot import SessionSnapshot, is_settled
from .sse import Render, SSEFormatter
from .sse_streams import default_render
from .store import CacheUnavailable
from .validation import log_id

logger = logging.getLogger("progress_ui")

__all__ = ["agroup_stream", "group_stream"]


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, CacheUnavailable) or isinstance(exc.__cause__, CacheUnavailable)


class _Group:
    """What the sync and async loops share: what each session was last sent, the
    ids and ``retry:`` of the one formatter, when the stream last said anything."""

    def __init__(self, sessions: Sequence[ProgressSession], formatter: SSEFormatter) -> None:
        self.ids = [session.session_id for session in sessions]
        self.formatter = formatter
        self.sent: list[SessionSnapshot | None] = [None] * len(sessions)
        self.heartbeat_interval = current_settings().HEARTBEAT_INTERVAL
        self.last_output = time.monotonic()

    def message(self, index: int, snapshot: SessionSnapshot, shared: Subscription | None) -> str:
        """The message for a change of session ``index``."""
        render = self.formatter.render
        # Only the default rendering sends changes alone; a custom one gets the
        # whole snapshot (as in sse_streams). Viewers of one hub poller that were
        # sent the same previous snapshot share one rendering.
        since = self.sent[index] if render is default_render else None
        if shared is not None:
            payload = shared.render(snapshot, render, since)
        elif render is default_render:
            payload = default_render(snapshot, since)
        else:
            payload = render(snapshot)
        self.sent[index] = snapshot
        self.last_output = time.monotonic()
        return self.formatter.snapshot(snapshot, payload)

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
        session = log_id(self.ids[index])
        if _is_transient(exc):
            logger.warning("progress_ui: group SSE stream paused (session %s): %s", session, exc)
            return []  # no done: the browser reconnects and resumes
        # Not always inside the except block (a follower's failure is reported
        # here later): pass the exception for its traceback.
        logger.error("progress_ui: group SSE stream failed (session %s)", session, exc_info=exc)
        return self.formatter.error()


async def agroup_stream(
    sessions: Sequence[ProgressSession],
    *,
    last_event_id: str | None = None,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    render: Render = default_render,
    shared: bool = True,
) -> AsyncIterator[str]:
    """SSE messages for all of ``sessions`` in one async stream (see the module
    docstring). Each session is followed through this event loop's hub
    (``shared=True``, one poller per session for all viewers) or by a poller of
    its own. Nothing happens until the first message is requested."""
    group = _Group(sessions, SSEFormatter(render, last_event_id=last_event_id))
    count = len(sessions)
    # Written by the followers, read here: the latest unsent snapshot of each
    # session, whether its follower has stopped, and how it failed.
    latest: list[SessionSnapshot | None] = [None] * count
    stopped = [False] * count
    errors: list[Exception | None] = [None] * count
    wake = asyncio.Event()
    feeds = [
        follow(s, poll_interval=poll_interval, max_duration=max_duration, shared=shared)
        for s in sessions
    ]

    async def follow_one(index: int, items: AsyncIterable[Followed]) -> None:
        iterator = aiter(items)
        try:
            async for item in iterator:
                if item is not None:  # the group sends its own heartbeats
                    latest[index] = item
                    wake.set()
        except Exception as exc:
            errors[index] = exc
        finally:
            stopped[index] = True
            wake.set()
            # Leave the hub now, not when the iterator is collected.
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    loop = asyncio.get_running_loop()
    followers = [
        loop.create_task(follow_one(i, feed), name=f"progress_ui group follower {i}")
        for i, feed in enumerate(feeds)
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
                feed = feeds[index]
                try:
                    message = group.message(
                        index, snapshot, feed if isinstance(feed, Subscription) else None
                    )
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


def group_stream(
    sessions: Sequence[ProgressSession],
    *,
    last_event_id: str | None = None,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    render: Render = default_render,
    shared: bool = True,
) -> Iterator[str]:
    """:func:`agroup_stream` for a sync (WSGI) server. With ``shared=True`` it runs
    on this process's hub loop (``progress_ui.hub_thread``), sharing one poller
    per session with every other viewer in the process; ``shared=False`` polls
    all the sessions in one loop in the calling thread."""
    if shared:
        return iterate_in_loop(
            lambda: agroup_stream(
                sessions,
                last_event_id=last_event_id,
                poll_interval=poll_interval,
                max_duration=max_duration,
                render=render,
            )
        )
    group = _Group(sessions, SSEFormatter(render, last_event_id=last_event_id))
    return _poll_group(sessions, group, poll_interval, max_duration)


def _poll_group(
    sessions: Sequence[ProgressSession],
    group: _Group,
    poll_interval: float | None,
    max_duration: float | None,
) -> Iterator[str]:
    interval = current_settings().POLL_INTERVAL if poll_interval is None else poll_interval
    rules = [FollowRule(session, max_duration) for session in sessions]
    index = 0
    try:
        while True:
            for index, (session, rule) in enumerate(zip(sessions, rules, strict=True)):
                if rule.done:
                    continue
                for item in rule.step(session.read()):
                    if item is not None:
                        yield group.message(index, item, None)
            over = [rule.done for rule in rules]
            if all(over) or any(over[i] and not group.settled(i) for i in range(len(rules))):
                break
            if group.heartbeat_due_in() <= 0:
                yield group.heartbeat()
            time.sleep(interval)
    except Exception as exc:
        yield from group.failed(index, exc)
        return
    yield from group.end()
