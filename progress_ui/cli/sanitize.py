"""The one sanitiser: text from a server or the cache reaches the terminal only
through :func:`safe_text`.

A terminal obeys what it is sent: OSC 0 sets the window title, OSC 52 writes the
clipboard, OSC 8 makes links, ``ESC[2J`` clears the screen, U+009B is an 8-bit
CSI, and U+202E turns the text after it around. All of them are control (Cc) or
format (Cf) characters, and none survives here.
"""

from __future__ import annotations

import unicodedata

ELLIPSIS = "\u2026"
#: Unicode categories dropped: controls (C0, DEL, C1), format characters (bidi
#: overrides and isolates, zero-width joiners) and lone surrogates.
_DROPPED = frozenset({"Cc", "Cf", "Cs"})
#: Characters looked at per character kept, at most: a string of a million
#: escapes costs a bounded amount of work, and shows as cut.
_SCAN_FACTOR = 4


def safe_text(value: object, limit: int = 500) -> str:
    """``value`` as one line of terminal-safe text, at most ``limit`` characters:
    control and format characters dropped, whitespace runs (newlines included)
    made one space, cut with an ellipsis."""
    text = "" if value is None else str(value)
    scan = limit * _SCAN_FACTOR + 16
    cut = len(text) > scan
    if cut:
        text = text[:scan]
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _DROPPED
    )
    cleaned = " ".join(kept.split())
    if len(cleaned) > limit or cut:
        return cleaned[: limit - 1] + ELLIPSIS
    return cleaned
