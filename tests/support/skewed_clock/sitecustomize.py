"""Shifts this Python process's wall clock by ``PROGRESS_TEST_CLOCK_SKEW`` seconds,
as if it ran on a machine whose clock is that far ahead (or behind, negative).

Put this directory first on ``PYTHONPATH`` of a child process: Python imports
``sitecustomize`` at start-up, before any other module, so every later
``time.time()`` and ``time.time_ns()`` (``from time import time`` included) reads
the shifted clock. progress_ui and Django's file and database caches read the
wall clock through these two functions; what is not shifted is the clock of the
stores themselves (Redis's ``TIME``, the file system's timestamps, SQLite's
``'now'``), as on a real machine whose clock is off. ``time.monotonic()`` is
left alone: it measures intervals, which skew does not change.
"""

from __future__ import annotations

import os
import time

_SKEW = float(os.environ.get("PROGRESS_TEST_CLOCK_SKEW") or 0)

if _SKEW:
    _time, _time_ns = time.time, time.time_ns
    _skew_ns = round(_SKEW * 1e9)

    def _skewed_time() -> float:
        return _time() + _SKEW

    def _skewed_time_ns() -> int:
        return _time_ns() + _skew_ns

    time.time = _skewed_time
    time.time_ns = _skewed_time_ns
