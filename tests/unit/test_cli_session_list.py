"""``progress list``: every field of every row goes through the sanitiser."""

from __future__ import annotations

from progress_ui.cli.session_list import table_lines
from progress_ui.engine.listing import SessionSummary

EVIL = "\x1b]0;pwned\x07\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m\u202e"


def test_every_field_is_sanitised() -> None:
    rows = [
        SessionSummary(f"A{EVIL}", f"running{EVIL}", 10, 2, f"user:{EVIL}"),
        SessionSummary("B" * 32, "complete", 100, 1, "", created_at=1_780_000_000.0),
    ]
    lines = table_lines(rows)
    assert all(ch.isprintable() for line in lines for ch in line), lines
    assert lines[1].split()[-1] == "user:]0;pwned]52;c;cHduZWQ=[2J31m"
    assert lines[1].split()[-2] == "-"  # created: unknown
    assert lines[2].split() == ["B" * 32, "complete", "100", "1", "2026-05-28T20:26:40Z", "-"]
    assert lines[-1] == "2 sessions."
