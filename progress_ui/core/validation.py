"""Validation and bounding of the strings that reach the cache and the browser.

Escaping for HTML happens at render time (Django templates autoescape); here we
only bound length, drop control characters and check identifiers.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from urllib.parse import urlsplit

TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
#: ``secrets.token_urlsafe(24)``: 32 characters, 192 bits of randomness.
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{32}\Z")
ELLIPSIS = "\u2026"
#: Largest count or total accepted (far beyond any real count, and exact in a float).
MAX_AMOUNT = 10**15


def is_valid_session_id(value: object) -> bool:
    return isinstance(value, str) and SESSION_ID_RE.match(value) is not None


def validate_task_id(value: object) -> str:
    if not isinstance(value, str) or TASK_ID_RE.match(value) is None:
        raise ValueError(
            f"Invalid task id {value!r}: use 1-64 characters from letters, digits, "
            "'_', '-' and '.', starting with a letter or digit."
        )
    return value


def clean_text(value: object, max_length: int) -> str:
    """``value`` as text: control characters removed (newlines and tabs kept),
    line endings normalised, and cut to ``max_length`` characters with an ellipsis."""
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs")
    )
    if len(text) > max_length:
        text = text[: max(0, max_length - 1)] + ELLIPSIS
    return text


def check_amount(label: str, value: object) -> float | int | None:
    """``value`` if it is a finite number from 0 to ``MAX_AMOUNT`` (or None);
    else ``ValueError`` naming ``label``. NaN and infinity would reach browsers
    as invalid JSON, and huge integers overflow every later read."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{label} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number, got {value!r}")
    if not 0 <= value <= MAX_AMOUNT:
        shown = value if abs(value) < 10**20 else f"a {len(str(int(value)))}-digit number"
        raise ValueError(f"{label} must be between 0 and {MAX_AMOUNT:.0e}, got {shown}")
    return value


def log_id(session_id: str) -> str:
    """What logs show of a session id: a short hash. The id is the only secret of
    a session without an owner, and logs travel further than the cache."""
    return "sid#" + hashlib.sha256(session_id.encode()).hexdigest()[:12]


#: The longest result link a task may hand the page.
MAX_URL_LENGTH = 2048


def url_problem(value: object) -> str | None:
    """Why ``value`` is not a link a page may follow (a path, or an absolute
    ``http``/``https`` URL, at most ``MAX_URL_LENGTH`` characters), or None."""
    if not isinstance(value, str):
        return "it is not a string"
    url = value.strip()
    if not url:
        return "it is empty"
    if len(url) > MAX_URL_LENGTH:
        return f"it is longer than {MAX_URL_LENGTH} characters"
    # Browsers drop tabs and newlines inside URLs ("java\tscript:"): refuse them,
    # and every other control character, before reading the scheme.
    if any(ord(char) < 32 or ord(char) == 127 for char in url):
        return "it holds control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it is not a URL"
    if parts.scheme.lower() not in ("", "http", "https"):
        return f"its scheme {parts.scheme!r} is not http or https"
    if parts.scheme and not parts.netloc:
        return "it has a scheme but no host"
    return None


def check_result_url(value: str) -> str:
    """``value``, stripped, if it is a link a page may follow; else a
    ``ValueError`` that says why and what is accepted."""
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(
            f"result_url {str(value)[:80]!r} cannot be shown: {problem}. Give a path "
            "('/reports/42.csv') or an http(s) URL."
        )
    return value.strip()
