"""NDJSON (``application/x-ndjson``): the wire format. Pure: no I/O.

One compact JSON snapshot per line (``core.snapshot.to_json``), what
``ProgressSession.stream()`` yields and what
``progress_ui:ndjson`` sends. JSON lines have no comment syntax, so a heartbeat
repeats the last line; a stream that failed ends with ``{"error": "<safe
message>"}``, and one interrupted by something that passes (the cache cannot be
reached, the server is shutting down) with the retry line ``{"retry":
<milliseconds>}`` (:func:`format_retry`); there is no closing line (the stream
just ends).

:class:`NDJSONFormatter` has the shape of ``progress_ui.wire.sse.SSEFormatter``
(``snapshot``, ``heartbeat``, ``done``, ``error``), so a pipeline can frame
followed snapshots the same way whatever the format.
"""

from __future__ import annotations

import json

from progress_ui.conf import current as current_settings
from progress_ui.core.snapshot import SessionSnapshot, to_json

CONTENT_TYPE = "application/x-ndjson"


def format_line(snapshot: SessionSnapshot) -> str:
    """One snapshot as a line."""
    return to_json(snapshot) + "\n"


def format_error(message: str) -> str:
    """The last line of a stream that failed: ``{"error": message}`` (``message``
    must be safe to show; details are only logged)."""
    return json.dumps({"error": message}, separators=(",", ":")) + "\n"


def format_retry(retry_ms: int | None = None) -> str:
    """The last line of an interrupted stream: ``{"retry": <ms>}``, the time after
    which to connect (or call ``stream()``) again; ``SSE_RETRY_MS`` unless given."""
    ms = current_settings().SSE_RETRY_MS if retry_ms is None else retry_ms
    return json.dumps({"retry": int(ms)}, separators=(",", ":")) + "\n"


class NDJSONFormatter:
    """Frames one stream's lines; a heartbeat repeats the last snapshot line."""

    def __init__(self) -> None:
        self._last = ""

    def snapshot(self, data: SessionSnapshot, payload: str | None = None) -> str:
        """The line for ``data`` (``payload``, if given, is that line already)."""
        self._last = format_line(data) if payload is None else payload
        return self._last

    def heartbeat(self) -> str:
        """The last line again ("" before any: nothing to repeat)."""
        return self._last

    def done(self) -> str:
        """Nothing: an NDJSON stream ends by ending."""
        return ""

    def error(self, message: str | None = None) -> list[str]:
        """The error line (the generic message unless ``message`` is given)."""
        text = current_settings().GENERIC_ERROR_MESSAGE if message is None else message
        return [format_error(text)]
