"""The NDJSON stream of one session (``progress_ui:ndjson``), fed by the hub.

The lines are those of ``ProgressSession.stream()`` (one pipeline,
``progress_ui.engine.follow.ndjson_lines``, wire format in
``progress_ui.wire.ndjson``), from the shared poller of the event loop this runs
on (``progress_ui.streaming.hub``) instead of a poller of its own; and it ends
when the session settles (``snapshot.is_settled``) as the SSE stream does.

A stream interrupted by something that passes (the cache cannot be reached, or
the server is shutting down) is not a failure: it ends with the retry line
``{"retry": <milliseconds>}`` (:func:`retry_line`, ``SSE_RETRY_MS``), telling
the client to connect again after that long, rather than with the error line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator

from progress_ui.core.validation import log_id
from progress_ui.engine.follow import Followed, closing, ndjson_lines
from progress_ui.engine.session import ProgressSession
from progress_ui.streaming.hub import ServerStopping, follow
from progress_ui.streaming.outage import cache_failed, is_transient
from progress_ui.wire.ndjson import format_retry

logger = logging.getLogger("progress_ui")


def retry_line(retry_ms: int | None = None) -> str:
    """The last line of an interrupted stream: ``{"retry": <ms>}``, the time after
    which to connect again (``SSE_RETRY_MS`` unless given;
    ``progress_ui.wire.ndjson.format_retry``)."""
    return format_retry(retry_ms)


async def ndjson_stream(
    session: ProgressSession,
    *,
    poll_interval: float | None = None,
    max_duration: float | None = None,
) -> AsyncIterator[str]:
    """NDJSON lines for ``session``, each when it changed (a heartbeat repeats the
    last one); the retry line if interrupted (see the module docstring). Nothing
    happens until the first line is requested (the hub is the one of the loop
    that asks)."""
    interrupted: list[BaseException] = []
    name = f"NDJSON stream of session {log_id(session.session_id)}"
    items = _until_interrupted(
        follow(session, poll_interval=poll_interval, max_duration=max_duration),
        interrupted,
        name,
    )
    async with closing(ndjson_lines(session.session_id, items)) as lines:
        async for line in lines:
            yield line
    if interrupted:
        yield retry_line()


async def _until_interrupted(
    items: AsyncIterable[Followed], interrupted: list[BaseException], name: str
) -> AsyncIterator[Followed]:
    """``items``, ending quietly (the exception kept in ``interrupted``) when they
    fail with a failure that passes; anything else goes on to ``ndjson_lines``,
    which logs it and ends with the error line."""
    async with closing(items) as iterator:
        try:
            async for item in iterator:
                yield item
        except ServerStopping as exc:
            interrupted.append(exc)
        except Exception as exc:
            if not is_transient(exc):
                raise
            cache_failed(exc, name)
            interrupted.append(exc)
