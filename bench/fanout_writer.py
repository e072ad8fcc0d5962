"""The writer of ``bench/fanout.py``: creates sessions, then updates each one
``--rate`` times a second with ``ProgressSession.update()``, the message carrying
the time of the write (``t=<seconds>``) so that viewers can measure their lag.

    python bench/fanout_writer.py --sessions 100 --rate 10 --until <epoch> --window A B

Prints one JSON line with the session ids once they exist (the orchestrator waits
for it), and at the end one with the number of writes made inside the window.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import _django  # bench/ is the script's folder, so first on sys.path

_django.setup(cache="redis")

from progress_ui import ProgressSession  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--start", type=float, required=True, help="epoch to start writing")
    parser.add_argument("--until", type=float, required=True, help="epoch to stop writing")
    parser.add_argument("--window", type=float, nargs=2, required=True)
    args = parser.parse_args()

    sessions = [
        ProgressSession.create({"a": "Import", "b": "Report"}) for _ in range(args.sessions)
    ]
    for session in sessions:
        session.update("a", percent=1, message=f"t={time.time():.6f}")  # reads once
    print(json.dumps({"ids": [s.session_id for s in sessions]}), flush=True)

    # Writes spread evenly over each period (write n is due at start + n * step).
    # A writer more than a period late skips ahead instead of bursting: viewers
    # are measured against the writes actually made.
    period = 1.0 / args.rate
    step = period / len(sessions)
    in_window = 0
    n = 0
    while True:
        due = args.start + n * step
        if due >= args.until:
            break
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            n = int((time.time() - args.start) / step)
        session = sessions[n % len(sessions)]
        now = time.time()
        session.update("a", percent=1 + (n // len(sessions)) % 98, message=f"t={now:.6f}")
        if args.window[0] <= now < args.window[1]:
            in_window += 1
        n += 1
    print(json.dumps({"writes_in_window": in_window, "writes": n}), flush=True)
    for session in sessions:
        session.delete()


if __name__ == "__main__":
    sys.exit(main())
