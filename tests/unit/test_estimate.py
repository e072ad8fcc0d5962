"""progress_ui.core.estimate: sample thinning, rate, time left, stalls, elapsed time; and
the replay of bench/eta.py's steady and bursty traces (tests/support/eta_traces.py)."""

from __future__ import annotations

import itertools
import json

import pytest

from progress_ui.core.estimate import Estimate, add_sample, elapsed, estimate
from tests.support.eta_traces import make_trace, replay, writes

T0 = 1_700_000_000.0


def linear(rate: float, times: list[float]) -> list[list[float]]:
    return [[T0 + t, rate * t] for t in times]


# -- add_sample ----------------------------------------------------------------


def test_first_sample_starts_the_list() -> None:
    assert add_sample([], T0, 0) == [[T0, 0.0]]


def test_samples_are_json_lists_and_the_argument_is_not_modified() -> None:
    samples = [[T0, 0.0]]
    new = add_sample(samples, T0 + 1, 5)
    assert samples == [[T0, 0.0]]
    assert json.loads(json.dumps(new)) == new == [[T0, 0.0], [T0 + 1, 5.0]]


def test_changes_closer_than_min_spacing_replace_the_newest_sample() -> None:
    samples: list[list[float]] = []
    for i in range(8):  # a write every 0.2 s, as iterate() throttles them
        samples = add_sample(samples, T0 + 0.2 * i, i, min_spacing=0.5)
    # 0 kept; 0.2 and 0.4 replaced by 0.6 (0.6 s after 0); 0.8, 1.0 by 1.2; then 1.4.
    assert samples == [[T0, 0], [T0 + 0.6, 3], [T0 + 1.2, 6], [T0 + 1.4, 7]]
    assert all(b[0] - a[0] >= 0.5 for a, b in itertools.pairwise(samples[:-1]))
    assert samples[-1] == [T0 + 1.4, 7]  # the newest observation is always kept


def test_an_unchanged_count_keeps_the_plateau_as_its_two_ends() -> None:
    samples = [[T0, 0.0], [T0 + 1, 10.0]]
    samples = add_sample(samples, T0 + 2, 10)
    samples = add_sample(samples, T0 + 3, 10)
    samples = add_sample(samples, T0 + 9, 10)
    assert samples == [[T0, 0], [T0 + 1, 10], [T0 + 9, 10]]
    samples = add_sample(samples, T0 + 10, 12)
    assert samples == [[T0, 0], [T0 + 1, 10], [T0 + 9, 10], [T0 + 10, 12]]


def test_a_count_going_down_is_a_restart() -> None:
    samples = linear(10, [0, 1, 2, 3])
    assert add_sample(samples, T0 + 4, 2) == [[T0 + 4, 2]]


def test_the_oldest_samples_are_dropped_beyond_max_samples() -> None:
    samples: list[list[float]] = []
    for i in range(50):
        samples = add_sample(samples, T0 + i, i, max_samples=20)
    assert len(samples) == 20
    assert samples[0] == [T0 + 30, 30] and samples[-1] == [T0 + 49, 49]


def test_a_clock_slightly_behind_does_not_reorder_samples() -> None:
    samples = add_sample([[T0, 0.0], [T0 + 5, 5.0]], T0 + 4.9, 6)
    assert [s[0] for s in samples] == sorted(s[0] for s in samples)
    assert samples[-1][1] == 6


# -- estimate ------------------------------------------------------------------


def test_no_samples_no_estimate() -> None:
    assert estimate([], 100, T0) == Estimate(rate=None, eta=None, stalled=False)


def test_no_estimate_with_fewer_than_three_samples() -> None:
    result = estimate(linear(10, [0, 5]), 1000, T0 + 5)
    assert result.rate is None and result.eta is None and not result.stalled


def test_no_estimate_with_less_than_two_seconds_of_history() -> None:
    result = estimate(linear(10, [0, 0.6, 1.2, 1.8]), 1000, T0 + 1.8)
    assert result.rate is None and result.eta is None
    assert estimate(linear(10, [0, 0.6, 1.2, 2.0]), 1000, T0 + 2.0).rate == pytest.approx(10)


def test_exact_rate_and_eta_on_a_linear_trace() -> None:
    samples = linear(12.5, [0, 1, 2, 3, 4, 5, 6, 7, 8])  # 100 of 1000 at T0 + 8
    result = estimate(samples, 1000, T0 + 8)
    assert result.rate == pytest.approx(12.5)
    assert result.eta == pytest.approx(72.0)
    assert not result.stalled


def test_the_rate_uses_the_trailing_window_only() -> None:
    samples = linear(1, [0, 1, 2, 3]) + [[T0 + 100 + t, 3 + 20 * t] for t in range(6)]
    assert estimate(samples, None, T0 + 105, window=10).rate == pytest.approx(20)


def test_eta_subtracts_the_time_since_the_last_sample_but_not_below_zero() -> None:
    samples = linear(10, [0, 1, 2, 3, 4])  # 40 of 100 at T0 + 4: 6 s left then
    assert estimate(samples, 100, T0 + 4).eta == pytest.approx(6)
    assert estimate(samples, 100, T0 + 6.5).eta == pytest.approx(3.5)
    assert estimate(samples, 100, T0 + 11).eta == 0.0  # overdue, not stalled yet


def test_stall_flag_and_no_estimate_while_stalled() -> None:
    samples = linear(10, [0, 1, 2, 3, 4])  # changes every second: threshold max(10, 5)
    running = estimate(samples, 100, T0 + 13.9)
    assert not running.stalled and running.eta == 0.0
    stalled = estimate(samples, 100, T0 + 14.1)
    assert stalled == Estimate(rate=None, eta=None, stalled=True)


def test_the_stall_threshold_follows_the_usual_interval_between_changes() -> None:
    samples = linear(1, [0, 4, 8, 12, 16])  # a change every 4 s: threshold 20 s
    assert not estimate(samples, 100, T0 + 16 + 19).stalled
    assert estimate(samples, 100, T0 + 16 + 21).stalled


def test_a_plateau_counts_from_the_last_change() -> None:
    samples = [*linear(10, [0, 1, 2, 3]), [T0 + 12, 30.0]]  # writes, count unchanged
    assert not estimate(samples, 100, T0 + 12.5).stalled  # 9.5 s since the change at 3
    assert estimate(samples, 100, T0 + 13.5).stalled  # 10.5 s, though written at 12


def test_no_stall_before_any_progress() -> None:
    assert not estimate([[T0, 0.0], [T0 + 60, 0.0]], 100, T0 + 120).stalled


def test_after_a_stall_the_rate_restarts_from_the_resumption() -> None:
    before = linear(10, [0, 1, 2, 3])
    after = [[T0 + 40 + t, 30 + 20 * t] for t in range(4)]  # 37 s pause, then 20/s
    result = estimate(before + after, None, T0 + 43)
    assert not result.stalled and result.rate == pytest.approx(20)


def test_eta_is_none_when_the_total_is_unknown_or_reached() -> None:
    samples = linear(10, [0, 1, 2, 3, 4])
    unknown = estimate(samples, None, T0 + 4)
    assert unknown.rate == pytest.approx(10) and unknown.eta is None
    assert estimate(samples, 40, T0 + 4).eta is None
    assert estimate(samples, 30, T0 + 4).eta is None


def test_no_progress_in_the_window_gives_rate_zero_and_no_eta() -> None:
    samples = [[T0, 5.0], [T0 + 1, 5.0], [T0 + 3, 5.0]]  # one change only
    result = estimate(samples, 100, T0 + 3)
    assert result.rate == 0.0 and result.eta is None and not result.stalled


# -- elapsed -------------------------------------------------------------------


def test_elapsed() -> None:
    assert elapsed(None, None, T0) is None
    assert elapsed(T0, None, T0 + 190) == 190
    assert elapsed(T0, T0 + 60, T0 + 190) == 60
    assert elapsed(T0 + 5, None, T0) == 0.0  # another process's clock ahead


# -- the benchmark's replay ----------------------------------------------------


def test_replay_writes_like_iterate() -> None:
    trace = make_trace("steady")
    out = writes(trace)
    assert out[0] == (0.0, 0) and out[-1] == (trace.end, trace.total)
    assert all(b[0] - a[0] >= 0.2 for a, b in itertools.pairwise(out[1:-1]))


@pytest.mark.parametrize("name", ["steady", "bursty"])
def test_eta_error_over_the_second_half_is_under_20_percent(name: str) -> None:
    run = replay(make_trace(name))
    assert run.median_error() < 20
    assert run.coverage() > 0.9
    assert run.false_stalls() == 0


def test_the_pause_is_flagged_as_a_stall() -> None:
    run = replay(make_trace("stalled"))
    assert run.stall_flagged() is True
    assert run.false_stalls() == 0
    assert run.median_error() < 20
