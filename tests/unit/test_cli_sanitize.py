"""The watcher's one sanitiser: nothing a terminal would obey gets through."""

from __future__ import annotations

import time

import pytest

from progress_ui.cli.sanitize import ELLIPSIS, safe_text

ESCAPES = {
    "OSC 0 (title)": "\x1b]0;pwned\x07",
    "OSC 52 (clipboard)": "\x1b]52;c;cHduZWQ=\x07",
    "OSC 8 (link)": "\x1b]8;;https://evil.example/\x1b\\",
    "ESC[2J (clear)": "\x1b[2J",
    "C1 CSI": "\x9b31m",
    "C1 OSC": "\x9d0;t\x9c",
    "RLO": "\u202e",
    "LRI/PDI": "\u2066\u2069",
    "zero-width joiner": "\u200d",
    "lone surrogate": "\ud800",
    "DEL": "\x7f",
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_no_control_or_format_character_survives(name: str) -> None:
    out = safe_text(f"a{ESCAPES[name]}b")
    assert out.startswith("a") and out.endswith("b")
    assert all(ch.isprintable() for ch in out), repr(out)


def test_whitespace_becomes_one_line() -> None:
    assert safe_text("ok\x1b[2J\u202egone\nnext\tcol\r\u2028end") == "ok[2Jgone next col end"
    assert safe_text(None) == ""
    assert safe_text(42) == "42"


def test_long_text_is_cut_with_an_ellipsis() -> None:
    assert safe_text("x" * 600) == "x" * 499 + ELLIPSIS
    assert safe_text("x" * 20, limit=10) == "x" * 9 + ELLIPSIS
    assert safe_text("x" * 10, limit=10) == "x" * 10


def test_a_flood_of_escapes_costs_bounded_work_and_shows_as_cut() -> None:
    flood = "\x1b" * 5_000_000 + "hidden"
    start = time.perf_counter()
    out = safe_text(flood, limit=100)
    assert time.perf_counter() - start < 0.5
    assert out == ELLIPSIS  # nothing visible in what was looked at, and more unread
    assert safe_text("\x1b" * 300 + "y" * 1000, limit=100) == "y" * 99 + ELLIPSIS
