"""The SSE payload: what rendering one message costs, here and at an earlier commit.

    .venv/bin/python bench/payload.py [--before 82fa925] [--rounds 7] [--languages en,fr]

Times ``render_partials(snapshot, previous)`` (``progress_ui.render.components``),
what the hub renders once per change of a followed session and sends to all its
viewers, for sessions of 1, 10 and 100 tasks:

- ``whole``: a viewer's first message (``previous=None``): every region, of a
  session whose last change moved one task;
- ``change``: one task moved since the previous snapshot (what nearly every
  message is): the display of the new snapshot, the comparison with the
  previous one (whose display the hub already has), the changed bar, the
  summary and the status;
- ``every``: every task moved since the previous snapshot (a poll that found
  all of them changed): every bar is new.

Every message renders a new snapshot (no display is reused across messages).
The package of ``--before`` (a git revision; its ``progress_ui/`` taken with
``git archive``) and the one of this working tree run in separate processes,
one round of each in turn ("before", "after", "before"...), in one sitting: the
machine is shared and noisy, so the table shows the median of the rounds, per
message, and the ratio after / before. Times are CPU time of the measuring
process. No cache, database or network: only
Django's settings, templates and translations.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 10, 100)
#: Messages per timed loop, by number of tasks (about 0.1 s each).
MESSAGES = {1: 3000, 10: 1000, 100: 150}
KINDS = ("whole", "change", "every")
#: The tasks started 90 s ago ("1 minute elapsed").
STARTED_AT = time.time() - 90


# -- the measuring process (one package, one round) ------------------------------------


def _setup(root: Path, language: str) -> None:
    sys.path.insert(0, str(root))
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["progress_ui"],
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        USE_I18N=True,
        LANGUAGE_CODE=language,
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    )
    django.setup()


def _task(i: int, step: int) -> dict[str, Any]:
    return {
        "name": f"Import part {i} & co",
        "status": "running",
        "percent": (step + i) % 100,
        "message": f"row {step * 10 + i} of <file {i}.csv>",
        "current": step * 10 + i,
        "total": 1000,
        "simulated": False,
        "rate": 12.5,
        "eta": 90.0,
        "started_at": STARTED_AT,
    }


def _snapshots(size: int, count: int, every: bool = False) -> list[dict[str, Any]]:
    """``count`` snapshots of one session of ``size`` tasks, each one task ahead
    of the one before (the task that moves takes turns), or every task
    (``every``). Each snapshot is new, tasks included, as a read from the cache."""
    tasks = {f"t{i}": _task(i, 0) for i in range(size)}
    out = []
    for step in range(1, count + 1):
        moved = range(size) if every else (step % size,)
        tasks = {**tasks, **{f"t{i}": _task(i, step) for i in moved}}
        tasks = {task_id: dict(task) for task_id, task in tasks.items()}
        out.append(
            {
                "session_id": "a" * 32,
                "status": "running",
                "overall_percent": step % 100,
                "tasks": tasks,
                "expired": False,
            }
        )
    return out


def measure(root: Path, language: str) -> dict[str, float]:
    """CPU microseconds per message (this process's CPU time, which other
    processes on a busy machine disturb less than the wall clock), by
    ``"<kind> <size>"``."""
    _setup(root, language)
    from django.utils import translation

    from progress_ui.render.components import render_partials

    results: dict[str, float] = {}
    with translation.override(language):
        for size in SIZES:
            count = MESSAGES[size]
            for snapshot in _snapshots(size, count // 5):  # warm-up: templates, catalogs
                render_partials(snapshot)
            for kind in KINDS:
                snapshots = _snapshots(size, count + 1, every=kind == "every")
                start = time.process_time()
                if kind == "whole":
                    for snapshot in snapshots[1:]:
                        render_partials(snapshot)
                else:
                    for previous, snapshot in itertools.pairwise(snapshots):
                        render_partials(snapshot, previous)
                results[f"{kind} {size}"] = (time.process_time() - start) / count * 1e6
    return results


# -- the driver --------------------------------------------------------------------------


def _extract(revision: str, into: Path) -> Path:
    archive = into / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "progress_ui"], stdout=out, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "before", filter="data")
    return into / "before"


def _round(root: Path, language: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", str(root), "--languages", language],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=root,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="82fa925", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--languages", default="en")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.languages)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        trees = {f"before ({args.before})": _extract(args.before, Path(tmp)), "after": ROOT}
        for language in args.languages.split(","):
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, root in trees.items():
                    rounds[name].append(_round(root, language))
            _print(language, rounds, args.rounds)


def _print(language: str, rounds: dict[str, list[dict[str, float]]], count: int) -> None:
    before, after = rounds.values()
    names = list(rounds)
    print(f"\nSSE payload, µs per message (median of {count} rounds), language {language!r}")
    print(f"{'message':<8} {'tasks':>5} {names[0]:>18} {names[1]:>10} {'after/before':>13}")
    for kind in KINDS:
        for size in SIZES:
            key = f"{kind} {size}"
            old = statistics.median(r[key] for r in before)
            new = statistics.median(r[key] for r in after)
            print(f"{kind:<8} {size:>5} {old:>18.1f} {new:>10.1f} {new / old:>13.2f}")


if __name__ == "__main__":
    main()
