"""NDJSON wire format (``progress_ui.wire.ndjson``), line for line."""

from __future__ import annotations

import json

from django.test import override_settings

from progress_ui.core.snapshot import expired_snapshot, to_json
from progress_ui.wire.ndjson import (
    CONTENT_TYPE,
    NDJSONFormatter,
    format_error,
    format_line,
    format_retry,
)


def test_lines_are_compact_json_and_a_heartbeat_repeats_the_last() -> None:
    snap = expired_snapshot("s" * 32, {"a": "A"})
    writer = NDJSONFormatter()
    assert writer.heartbeat() == ""  # nothing sent yet: nothing to repeat
    line = writer.snapshot(snap)
    assert line == to_json(snap) + "\n" == format_line(snap)
    assert "\n" not in line[:-1]
    assert writer.heartbeat() == line
    assert writer.done() == ""
    assert CONTENT_TYPE == "application/x-ndjson"


def test_error_line_carries_only_the_safe_message() -> None:
    with override_settings(PROGRESS_UI={"GENERIC_ERROR_MESSAGE": "Nope."}):
        assert NDJSONFormatter().error() == ['{"error":"Nope."}\n']
    assert json.loads(format_error('say "hi"\n')) == {"error": 'say "hi"\n'}


def test_the_retry_line_says_when_to_come_back() -> None:
    assert format_retry() == '{"retry":2000}\n'
    assert format_retry(500) == '{"retry":500}\n'
    with override_settings(PROGRESS_UI={"SSE_RETRY_MS": 750}):
        assert json.loads(format_retry()) == {"retry": 750}
