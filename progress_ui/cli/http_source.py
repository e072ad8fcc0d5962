"""Snapshots from a site's NDJSON stream (``progress_ui:ndjson``), over HTTP.

Everything the server sends is suspect: lines are bounded (:data:`MAX_LINE`),
JSON that does not decode (malformed, or nested deeper than Python recurses)
and data that is not a snapshot end the watch with one line and exit status 4,
and ``--timeout`` holds whatever arrives (``http_body``).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Generator, Iterator

from progress_ui.cli.deadlines import passed, remaining
from progress_ui.cli.exits import EXIT_TRANSPORT, WatchFailed
from progress_ui.cli.http_body import HTTPBody, Opened
from progress_ui.cli.sanitize import safe_text
from progress_ui.cli.snapshots import BadSnapshot, TaskTracker, Watched, read_snapshot

#: Longest NDJSON line accepted (a snapshot of 100 tasks at every limit is ~0.2 MB).
MAX_LINE = 4 * 1024 * 1024
#: Seconds between reconnections when a server ends a stream before the session settles.
RECONNECT_DELAY = 1.0
NDJSON = "application/x-ndjson"


def _failure(exc: BaseException, read_timeout: float) -> WatchFailed:
    """The one-line failure for what the reading thread raised."""
    if isinstance(exc, WatchFailed):
        return exc
    if isinstance(exc, TimeoutError):  # socket.timeout is an alias
        return WatchFailed(
            EXIT_TRANSPORT, f"Failed: the server sent nothing for {read_timeout:g} s."
        )
    if isinstance(exc, OSError | http.client.HTTPException | ValueError):
        return WatchFailed(EXIT_TRANSPORT, f"Failed: the stream broke ({type(exc).__name__}).")
    return WatchFailed(EXIT_TRANSPORT, f"Failed: reading the stream raised {type(exc).__name__}.")


def body_lines(body: HTTPBody, deadline: float | None, read_timeout: float) -> Iterator[bytes]:
    """The NDJSON lines of ``body`` as they arrive, after checking its media
    type; returns quietly when ``deadline`` passes."""
    buffer = bytearray()
    while (item := body.receive(deadline)) is not None:
        if isinstance(item, BaseException):
            raise _failure(item, read_timeout)
        if isinstance(item, Opened):  # always first
            if item.content_type != NDJSON:
                raise WatchFailed(
                    EXIT_TRANSPORT,
                    f"Failed: expected {NDJSON}, got {safe_text(item.content_type, 80)} "
                    "(is this the progress_ui:ndjson URL, .../<id>/stream/?).",
                )
            continue
        if not item:
            if buffer:
                raise WatchFailed(EXIT_TRANSPORT, "Failed: the stream ended with a cut line.")
            return
        buffer += item
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            if end - start >= MAX_LINE:
                raise WatchFailed(EXIT_TRANSPORT, "Failed: the stream sent a line too long.")
            yield bytes(buffer[start : end + 1])
            start = end + 1
        del buffer[:start]
        if len(buffer) >= MAX_LINE:
            raise WatchFailed(EXIT_TRANSPORT, "Failed: the stream sent a line too long.")


def decode_line(raw: bytes, tracker: TaskTracker) -> Watched | None:
    """The snapshot on one NDJSON line (None for a blank line); a failure line
    (``{"error": ...}``) or anything that is not a snapshot raises WatchFailed."""
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deep
        raise WatchFailed(EXIT_TRANSPORT, "Failed: the stream sent bad JSON.") from exc
    if isinstance(value, dict) and "error" in value:
        error = value["error"]
        shown = safe_text(error, 200) if isinstance(error, str) else "(not text)"
        raise WatchFailed(EXIT_TRANSPORT, f"Failed: the server reported: {shown}")
    try:
        return read_snapshot(value, tracker)
    except BadSnapshot as exc:
        raise WatchFailed(EXIT_TRANSPORT, f"Failed: the stream sent {exc}.") from exc


def url_snapshots(
    url: str,
    headers: dict[str, str],
    read_timeout: float,
    deadline: float | None,
    tracker: TaskTracker,
) -> Generator[Watched]:
    """Snapshots from an NDJSON endpoint until the session settles or ``deadline``
    passes; reconnects when the server ends a stream early (its
    ``MAX_STREAM_DURATION``)."""
    while not passed(deadline):
        received = False
        with HTTPBody(url, headers, read_timeout) as body:
            for raw in body_lines(body, deadline, read_timeout):
                snap = decode_line(raw, tracker)
                if snap is None:
                    continue
                received = True
                yield snap
                if snap.settled:
                    return
        if passed(deadline):
            return
        if not received:
            raise WatchFailed(EXIT_TRANSPORT, "Failed: the server ended the stream at once.")
        left = remaining(deadline)
        time.sleep(RECONNECT_DELAY if left is None else max(0.0, min(RECONNECT_DELAY, left)))
