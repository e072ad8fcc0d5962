from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from progress_ui.core.simulation import (
    completing_percent,
    ease_out_cubic,
    real_percent,
    simulated_percent,
)

times = st.floats(min_value=0, max_value=1e6, allow_nan=False)


def test_simulated_starts_at_zero_and_moves_quickly() -> None:
    assert simulated_percent(0, half_life=5, cap=95) == 0
    assert simulated_percent(1, half_life=5, cap=95) > 10
    assert simulated_percent(5, half_life=5, cap=95) == pytest.approx(47.5)


def test_simulated_slows_down() -> None:
    first = simulated_percent(5, half_life=5, cap=95)
    second = simulated_percent(10, half_life=5, cap=95) - first
    assert second < first


@given(a=times, b=times)
def test_simulated_is_monotonic_and_capped(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    p_lo = simulated_percent(lo, half_life=5, cap=95)
    p_hi = simulated_percent(hi, half_life=5, cap=95)
    assert 0 <= p_lo <= p_hi <= 95


def test_completing_reaches_100_after_duration() -> None:
    assert completing_percent(40, 0, duration=0.3) == 40
    assert 40 < completing_percent(40, 0.1, duration=0.3) < 100
    assert completing_percent(40, 0.3, duration=0.3) == 100
    assert completing_percent(40, 5, duration=0) == 100


@given(a=st.floats(0, 1), b=st.floats(0, 1))
def test_ease_is_monotonic(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert 0 <= ease_out_cubic(lo) <= ease_out_cubic(hi) <= 1


def test_real_percent() -> None:
    assert real_percent(None, 10) is None
    assert real_percent(5, None) is None
    assert real_percent(5, 0) is None
    assert real_percent(5, 10) == 50
    assert real_percent(20, 10) == 100
