"""Pure progress maths: no cache, no clock. Every function takes ``now`` explicitly.

The simulated percent is computed from timestamps at read time, so no thread or
timer runs per task and nothing is written while a task runs without news.
"""

from __future__ import annotations

import math


def simulated_percent(elapsed: float, *, half_life: float, cap: float) -> float:
    """Fast start, slowing down, approaching but never reaching ``cap``.

    Monotonic in ``elapsed``; 0 at (or before) the start.
    """
    if elapsed <= 0 or half_life <= 0:
        return 0.0 if elapsed <= 0 else cap
    return cap * (1.0 - math.pow(0.5, elapsed / half_life))


def ease_out_cubic(fraction: float) -> float:
    f = min(1.0, max(0.0, fraction))
    return 1.0 - (1.0 - f) ** 3


def completing_percent(start_percent: float, elapsed: float, *, duration: float) -> float:
    """Animate from ``start_percent`` to 100 over ``duration`` seconds."""
    if duration <= 0 or elapsed >= duration:
        return 100.0
    return start_percent + (100.0 - start_percent) * ease_out_cubic(elapsed / duration)


def real_percent(current: float | None, total: float | None) -> float | None:
    """Measured percent, or None when it is not known."""
    if current is None or not total or total <= 0:
        return None
    return max(0.0, min(100.0, 100.0 * current / total))
