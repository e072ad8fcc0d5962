"""Following a session in the cache until it settles, and its NDJSON form.

:class:`FollowRule` holds the rule every follower applies to fresh reads (emit a
snapshot only when it changed, a heartbeat when idle, stop after the final one);
:func:`follow_snapshots` / :func:`afollow_snapshots` poll the cache with it, and
the hub (``progress_ui.hub``) shares one poller among many viewers with it.

NDJSON (``application/x-ndjson``, what the original API's ``stream()`` yields) is
one ``snapshot.to_json`` per line; :func:`json_lines` turns followed snapshots
into those lines, for ``ProgressSession.stream()`` and the NDJSON view alike.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Protocol

from .conf import current as current_settings
from .snapshot import SessionSnapshot, expired_snapshot, is_settled, to_json
from .validation import log_id

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


def follow_snapshots(
    source: SnapshotSource,
    *,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    until: Until = is_settled,
) -> Iterator[Followed]:
    """Changed snapshots (and heartbeats) until ``until`` (by default: the session
    settled), expiry, or ``max_duration`` (default ``MAX_STREAM_DURATION``)."""
    interval = current_settings().POLL_INTERVAL if poll_interval is None else poll_interval
    rule = FollowRule(source, max_duration, until)
    while True:
        yield from rule.step(source.read())
        if rule.done:
            return
        time.sleep(interval)


async def afollow_snapshots(
    source: SnapshotSource,
    *,
    poll_interval: float | None = None,
    max_duration: float | None = None,
    until: Until = is_settled,
) -> AsyncIterator[Followed]:
    """Async :func:`follow_snapshots`; never blocks the event loop."""
    interval = current_settings().POLL_INTERVAL if poll_interval is None else poll_interval
    rule = FollowRule(source, max_duration, until)
    while True:
        for item in rule.step(await source.aread()):
            yield item
        if rule.done:
            return
        await asyncio.sleep(interval)


# -- NDJSON ------------------------------------------------------------------------


def error_line(message: str) -> str:
    """The last line of an NDJSON stream that failed: ``{"error": message}``
    (``message`` must be safe to show; details are only logged)."""
    return json.dumps({"error": message}, separators=(",", ":")) + "\n"


def _line(item: Followed, last: list[SessionSnapshot]) -> str:
    # JSON-lines has no comment syntax: a heartbeat repeats the last snapshot.
    if item is None:
        return to_json(last[0]) + "\n"
    last[:] = [item]
    return to_json(item) + "\n"


def json_lines(session_id: str, items: Iterable[Followed]) -> Iterator[str]:
    """``items`` as NDJSON lines. A failure is logged and ends the stream with
    :func:`error_line`."""
    last: list[SessionSnapshot] = []
    try:
        for item in items:
            yield _line(item, last)
    except Exception:
        logger.exception("progress_ui: NDJSON stream of session %s failed", log_id(session_id))
        yield error_line(current_settings().GENERIC_ERROR_MESSAGE)


async def ajson_lines(session_id: str, items: AsyncIterable[Followed]) -> AsyncIterator[str]:
    """Async :func:`json_lines`; closes ``items`` when done."""
    last: list[SessionSnapshot] = []
    iterator = aiter(items)
    try:
        async for item in iterator:
            yield _line(item, last)
    except Exception:
        logger.exception("progress_ui: NDJSON stream of session %s failed", log_id(session_id))
        yield error_line(current_settings().GENERIC_ERROR_MESSAGE)
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
