"""Generators that follow a session in the cache until it finishes.

``snapshots()``/``asnapshots()`` hold the polling rule (emit a snapshot only when
it changed, a heartbeat when idle, stop after the final one); the transports
(NDJSON here, SSE in ``sse.py``) only format what they yield.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING

from . import snapshot as snap
from .conf import current as current_settings
from .snapshot import SessionSnapshot

if TYPE_CHECKING:
    from .session import ProgressSession

logger = logging.getLogger("progress_ui")
#: Yielded instead of a snapshot when nothing changed for HEARTBEAT_INTERVAL.
HEARTBEAT = None


class _Follower:
    """The emit/stop rule shared by the sync and async loops."""

    def __init__(self, session: ProgressSession, max_duration: float | None) -> None:
        conf = current_settings()
        self.session = session
        self.last: SessionSnapshot | None = None
        self.started = time.monotonic()
        self.last_emit = self.started
        self.heartbeat = conf.HEARTBEAT_INTERVAL
        self.deadline = self.started + (
            conf.MAX_STREAM_DURATION if max_duration is None else max_duration
        )
        self.done = False

    def step(self, current: SessionSnapshot | None) -> list[SessionSnapshot | None]:
        """What to yield for a fresh read (``None`` in the list is a heartbeat)."""
        now = time.monotonic()
        if current is None:  # expired or deleted while followed
            self.done = True
            return [snap.expired(self.session.session_id, self.session.tasks)]
        out: list[SessionSnapshot | None] = []
        if current != self.last:
            out.append(current)
            self.last, self.last_emit = current, now
        elif now - self.last_emit >= self.heartbeat:
            out.append(HEARTBEAT)
            self.last_emit = now
        if snap.is_finished(current) or now >= self.deadline:
            self.done = True
        return out


def snapshots(
    session: ProgressSession,
    *,
    poll_interval: float | None = None,
    max_duration: float | None = None,
) -> Iterator[SessionSnapshot | None]:
    """Changed snapshots (and ``None`` heartbeats) until the session finishes,
    expires, or ``max_duration`` (default ``MAX_STREAM_DURATION``) passes."""
    interval = current_settings().POLL_INTERVAL if poll_interval is None else poll_interval
    follower = _Follower(session, max_duration)
    while True:
        yield from follower.step(session.read())
        if follower.done:
            return
        time.sleep(interval)


async def asnapshots(
    session: ProgressSession,
    *,
    poll_interval: float | None = None,
    max_duration: float | None = None,
) -> AsyncIterator[SessionSnapshot | None]:
    """Async :func:`snapshots`; never blocks the event loop."""
    interval = current_settings().POLL_INTERVAL if poll_interval is None else poll_interval
    follower = _Follower(session, max_duration)
    while True:
        for item in follower.step(await session.aread()):
            yield item
        if follower.done:
            return
        await asyncio.sleep(interval)


def to_json_line(data: SessionSnapshot) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n"


def _ndjson(item: SessionSnapshot | None, last: list[SessionSnapshot]) -> str:
    # JSON-lines has no comment syntax: a heartbeat repeats the last snapshot.
    if item is None:
        return to_json_line(last[0])
    last[:] = [item]
    return to_json_line(item)


def ndjson_stream(session: ProgressSession, *, poll_interval: float | None = None) -> Iterator[str]:
    """What ``session.stream()`` returns: JSON lines until the session finishes."""
    return json_lines(session.session_id, snapshots(session, poll_interval=poll_interval))


def andjson_stream(
    session: ProgressSession, *, poll_interval: float | None = None
) -> AsyncIterator[str]:
    """Async :func:`ndjson_stream`."""
    return ajson_lines(session.session_id, asnapshots(session, poll_interval=poll_interval))


# -- NDJSON from any snapshot source ------------------------------------------------


def error_line(message: str) -> str:
    """The last line of an NDJSON stream that failed: ``{"error": message}``
    (``message`` must be safe to show; details are only logged)."""
    return json.dumps({"error": message}, separators=(",", ":")) + "\n"


def json_lines(session_id: str, items: Iterable[SessionSnapshot | None]) -> Iterator[str]:
    """``items`` (snapshots, ``None`` heartbeats) as JSON lines. A failure is
    logged and ends the stream with :func:`error_line`."""
    last: list[SessionSnapshot] = []
    try:
        for item in items:
            yield _ndjson(item, last)
    except Exception:
        logger.exception("progress_ui: NDJSON stream of session %s failed", session_id)
        yield error_line(current_settings().GENERIC_ERROR_MESSAGE)


async def ajson_lines(
    session_id: str, items: AsyncIterable[SessionSnapshot | None]
) -> AsyncIterator[str]:
    """Async :func:`json_lines`; closes ``items`` when done."""
    last: list[SessionSnapshot] = []
    iterator = aiter(items)
    try:
        async for item in iterator:
            yield _ndjson(item, last)
    except Exception:
        logger.exception("progress_ui: NDJSON stream of session %s failed", session_id)
        yield error_line(current_settings().GENERIC_ERROR_MESSAGE)
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
