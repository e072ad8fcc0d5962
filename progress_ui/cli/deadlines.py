"""``--timeout`` as a wall-clock deadline: a ``time.monotonic()`` value, or None."""

from __future__ import annotations

import time


def deadline_after(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline``, or None for no deadline."""
    return None if deadline is None else deadline - time.monotonic()


def passed(deadline: float | None) -> bool:
    left = remaining(deadline)
    return left is not None and left <= 0
