"""How good is the time left (``progress_ui.core.estimate``)? Replays synthetic progress
traces whose true end is known (tests/support/eta_traces.py): samples written as ``iterate()``
writes them (at most one per 0.2 s, thinned by ``add_sample``), an estimate read every
second of simulated time. No sleeping; a fixed seed, so the table is reproducible.

    .venv/bin/python bench/eta.py [--seed 1] [--compare]

Per trace: the median and p90 absolute percentage error of ``eta`` over the second half
of the job (reads with an estimate), the median absolute error in seconds, the fraction
of all reads with an estimate, and whether a stall was flagged during the pause (and
how many reads were wrongly flagged outside it). ``--compare`` adds the median and p90
errors averaged over 20 seeds, for the least-squares slope (the method used) and for
the rate taken between the window's end points.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import _django  # bench/ is the script's folder, so first on sys.path

sys.path.insert(0, str(_django.ROOT))

from progress_ui.core.estimate import Method
from tests.support.eta_traces import GENERATORS, make_trace, replay


def table(seed: int, method: Method) -> str:
    rows = [
        "| trace | job (s) | median error | p90 error | median error (s) "
        "| reads with eta | stall flagged in pause | false stall reads |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name in GENERATORS:
        run = replay(make_trace(name, seed), method=method)
        seconds = [
            abs(r.result.eta - r.true_left) for r in run.second_half() if r.result.eta is not None
        ]
        flagged = run.stall_flagged()
        rows.append(
            f"| {name} | {run.trace.end:.0f} | {run.median_error():.1f} % "
            f"| {run.p90_error():.1f} % | {statistics.median(seconds):.1f} "
            f"| {run.coverage():.0%} | {'-' if flagged is None else 'yes' if flagged else 'NO'} "
            f"| {run.false_stalls()} |"
        )
    return "\n".join(rows)


def comparison(seeds: range) -> str:
    rows = [
        "| trace | least squares: median / p90 | end points: median / p90 |",
        "|---|---:|---:|",
    ]
    for name in GENERATORS:
        cells = []
        for method in ("lsq", "endpoints"):
            runs = [replay(make_trace(name, seed), method=method) for seed in seeds]
            median = statistics.mean(run.median_error() for run in runs)
            p90 = statistics.mean(run.p90_error() for run in runs)
            cells.append(f"{median:.1f} % / {p90:.1f} %")
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    print(f"eta vs true time left, least-squares rate over 30 s (seed {args.seed})\n")
    print(table(args.seed, "lsq"))
    if args.compare:
        seeds = range(1, 21)
        print(f"\nrate method, errors averaged over seeds {seeds.start}-{seeds.stop - 1}\n")
        print(comparison(seeds))


if __name__ == "__main__":
    main()
