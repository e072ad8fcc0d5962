"""Synthetic progress traces with a known end, and their replay through
``progress_ui.core.estimate`` (used by ``bench/eta.py`` and ``tests/unit/test_estimate.py``).

A trace is the completion time of each item. Replaying it writes samples as
``ProgressSession.iterate()`` would (a write when an item completes at least
``write_interval`` after the previous write, and always the last count), thins them with
``add_sample``, and reads an estimate every ``read_interval`` seconds of simulated time.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from progress_ui.core.estimate import Estimate, Method, add_sample, estimate


@dataclass(frozen=True)
class Trace:
    name: str
    times: list[float]  # completion time of each item, ascending, from 0
    pause: tuple[float, float] | None = None  # a stall in the work, (start, end)

    @property
    def total(self) -> int:
        return len(self.times)

    @property
    def end(self) -> float:
        return self.times[-1]


def _by_rate(rate: Callable[[float], float], total: int, rng: random.Random) -> list[float]:
    """Items whose instantaneous rate at time t is ``rate(t)``, each duration jittered
    by +-50 %."""
    times, t = [], 0.0
    for _ in range(total):
        t += rng.uniform(0.5, 1.5) / rate(t)
        times.append(t)
    return times


def steady(rng: random.Random) -> Trace:
    return Trace("steady", _by_rate(lambda t: 25.0, 3000, rng))


def bursty(rng: random.Random) -> Trace:
    """Batches of 50 rows every 2 s (+-0.5 s), each batch written in about 0.1 s."""
    times, t = [], 0.0
    for _ in range(60):
        t += rng.uniform(1.5, 2.5)
        for _ in range(50):
            t += rng.uniform(0.001, 0.003)
            times.append(t)
    return Trace("bursty", times)


def sparse(rng: random.Random) -> Trace:
    """Batches of 200 rows every 8 s (+-2 s): few, tall steps."""
    times, t = [], 0.0
    for _ in range(20):
        t += rng.uniform(6.0, 10.0)
        for _ in range(200):
            t += rng.uniform(0.001, 0.003)
            times.append(t)
    return Trace("sparse", times)


def slowing(rng: random.Random) -> Trace:
    """The rate falls linearly from 40/s to a third of that over about 150 s."""
    return Trace("slowing", _by_rate(lambda t: max(40.0 * (1 - t / 225), 40 / 3), 4000, rng))


def speeding(rng: random.Random) -> Trace:
    """The rate grows linearly from 10/s to three times that over about 150 s."""
    return Trace("speeding", _by_rate(lambda t: min(10.0 * (1 + t / 75), 30.0), 3000, rng))


def stalled(rng: random.Random) -> Trace:
    """Steady 25/s, with a 30 s pause after half of the items."""
    times = _by_rate(lambda t: 25.0, 3000, rng)
    half = len(times) // 2
    pause_start = times[half - 1]
    times = times[:half] + [t + 30.0 for t in times[half:]]
    return Trace("stalled", times, pause=(pause_start, pause_start + 30.0))


GENERATORS: dict[str, Callable[[random.Random], Trace]] = {
    "steady": steady,
    "bursty": bursty,
    "sparse": sparse,
    "slowing": slowing,
    "speeding": speeding,
    "stalled": stalled,
}


def make_trace(name: str, seed: int = 1) -> Trace:
    return GENERATORS[name](random.Random(f"{name}-{seed}"))


def writes(trace: Trace, write_interval: float = 0.2) -> list[tuple[float, int]]:
    """The ``(t, current)`` writes ``iterate()`` makes: 0 at the start, then a write when
    an item completes at least ``write_interval`` after the last write; the last count
    always."""
    out = [(0.0, 0)]
    last = 0.0
    for count, t in enumerate(trace.times, start=1):
        if t - last >= write_interval:
            out.append((t, count))
            last = t
    if out[-1][1] != trace.total:
        out.append((trace.end, trace.total))
    return out


@dataclass(frozen=True)
class Read:
    now: float
    true_left: float
    result: Estimate


@dataclass(frozen=True)
class Replay:
    trace: Trace
    reads: list[Read]

    def second_half(self) -> list[Read]:
        return [r for r in self.reads if r.now >= self.trace.end / 2]

    def errors(self) -> list[float]:
        """Absolute percentage error of ``eta`` over the second half of the job, for
        the reads with an estimate."""
        return [
            abs(r.result.eta - r.true_left) / r.true_left * 100
            for r in self.second_half()
            if r.result.eta is not None and r.true_left > 0
        ]

    def median_error(self) -> float:
        return statistics.median(self.errors())

    def p90_error(self) -> float:
        errors = sorted(self.errors())
        return errors[min(len(errors) - 1, int(0.9 * len(errors)))]

    def coverage(self) -> float:
        """Fraction of all reads with an eta."""
        return sum(r.result.eta is not None for r in self.reads) / len(self.reads)

    def stall_flagged(self) -> bool | None:
        """Whether a stall was flagged during the pause (None without a pause)."""
        if self.trace.pause is None:
            return None
        start, end = self.trace.pause
        return any(r.result.stalled for r in self.reads if start <= r.now < end)

    def false_stalls(self) -> int:
        """Reads flagged stalled outside the pause."""
        pause = self.trace.pause
        return sum(
            r.result.stalled
            for r in self.reads
            if pause is None or not pause[0] <= r.now < pause[1]
        )


def replay(
    trace: Trace,
    *,
    read_interval: float = 1.0,
    write_interval: float = 0.2,
    max_samples: int = 20,
    min_spacing: float = 0.5,
    window: float = 30.0,
    method: Method = "lsq",
) -> Replay:
    """Write the trace's samples as ``iterate()`` would and read an estimate every
    ``read_interval`` seconds until the job ends."""
    pending = writes(trace, write_interval)
    samples: list[list[float]] = []
    reads: list[Read] = []
    now = read_interval
    i = 0
    while now < trace.end:
        while i < len(pending) and pending[i][0] <= now:
            samples = add_sample(
                samples, *pending[i], max_samples=max_samples, min_spacing=min_spacing
            )
            i += 1
        result = estimate(samples, trace.total, now, window=window, method=method)
        reads.append(Read(now, trace.end - now, result))
        now += read_interval
    return Replay(trace, reads)
