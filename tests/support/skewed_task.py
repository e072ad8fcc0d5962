"""Child process for clock-skew tests: runs one task of an existing session, with
counts or without, then completes it. Start it with ``tests/support/skewed_clock``
first on ``PYTHONPATH`` and ``PROGRESS_TEST_CLOCK_SKEW`` set to shift its clock.

Usage: python -m tests.support.skewed_task SESSION_ID TASK_ID KIND SECONDS
KIND: ``counted`` (reports ``current`` of 100 every 0.1 s) or ``simulated``
(reports nothing between its start and its end).

Prints ``clock <time.time()>`` once set up (so the test can check the skew is
real), ``started`` after the task's first write, ``done`` after it completed.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from progress_ui import ProgressSession

    session_id, task_id, kind, seconds = argv[0], argv[1], argv[2], float(argv[3])
    session = ProgressSession.get(session_id)
    if session is None:
        print(f"session {session_id} not found", flush=True)
        return 3
    print(f"clock {time.time():.3f}", flush=True)
    if kind == "counted":
        steps = max(1, round(seconds / 0.1))
        session.update(task_id, current=0, total=steps)
        print("started", flush=True)
        for i in range(1, steps + 1):
            time.sleep(0.1)
            session.update(task_id, current=i, total=steps)
    elif kind == "simulated":
        session.start(task_id)
        print("started", flush=True)
        time.sleep(seconds)
    else:
        print(f"unknown kind {kind!r}", flush=True)
        return 2
    session.complete(task_id)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
