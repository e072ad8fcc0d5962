"""The writer of ``bench/fanout.py``: creates sessions, then updates each one
``--rate`` times a second with ``ProgressSession.update()``, the message carrying
the time of the write (``t=<seconds>``) so that viewers can measure their lag.

    python bench/fanout_writer.py --sessions 100 --rate 10 --max-seconds 120 [--label]

Prints one JSON line with the session ids once they exist and starts writing at
once. Reads one line ``[A, B]`` (the measuring window, epoch seconds) from
stdin, writes until ``B + --grace`` (or ``--max-seconds`` after starting, or
stdin closing), prints one JSON line with the writes made inside the window
(their timestamps fall in it), those due in it, and the time of each write in
the window by session (microseconds after ``A``: the orchestrator counts what
each viewer should have seen from them), and deletes its sessions. With
``--label`` the message is ``t=<seconds> s=<session index>``, for viewers of a
group stream, which follow several sessions at once.

Writes are spread evenly over each period: write ``n`` is due at
``start + n * period / sessions``. A writer more than a period late (the machine
is busy) skips ahead instead of bursting; viewers are measured against the
writes actually made, and the orchestrator reports how many were due.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import _django  # bench/ is the script's folder, so first on sys.path

_django.setup(cache="redis")

from progress_ui import ProgressSession  # noqa: E402


class Window:
    """The measuring window, once the orchestrator sends it."""

    def __init__(self) -> None:
        self.start = float("inf")
        self.end = float("inf")
        self.closed = False

    def read(self) -> None:
        line = sys.stdin.readline()
        if not line:
            self.closed = True
            return
        self.start, self.end = json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--rate", type=float, default=10.0, help="updates per session per second")
    parser.add_argument("--grace", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--label", action="store_true", help="name the session in messages")
    args = parser.parse_args()

    def text(index: int, now: float) -> str:
        return f"t={now:.6f} s={index}" if args.label else f"t={now:.6f}"

    sessions = [
        ProgressSession.create({"a": "Import", "b": "Report"}) for _ in range(args.sessions)
    ]
    for index, session in enumerate(sessions):
        session.update("a", percent=1, message=text(index, time.time()))
    print(json.dumps({"ids": [s.session_id for s in sessions]}), flush=True)

    window = Window()
    threading.Thread(target=window.read, daemon=True).start()
    start = time.time()
    step = 1.0 / args.rate / len(sessions)
    in_window = n = 0
    stamps: list[list[int]] = [[] for _ in sessions]
    try:
        while not window.closed:
            due = start + n * step
            if due >= min(window.end + args.grace, start + args.max_seconds):
                break
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            elif delay < -len(sessions) * step:
                n = int((time.time() - start) / step)
            index = n % len(sessions)
            now = time.time()
            percent = 1 + (n // len(sessions)) % 98
            sessions[index].update("a", percent=percent, message=text(index, now))
            if window.start <= now < window.end:
                in_window += 1
                stamps[index].append(int((now - window.start) * 1_000_000))
            n += 1
        known = window.end != float("inf")
        due_in_window = int((window.end - window.start) / step) if known else 0
        print(
            json.dumps(
                {"writes_in_window": in_window, "due_in_window": due_in_window, "stamps": stamps}
            )
        )
        sys.stdout.flush()
    finally:
        for session in sessions:
            session.delete()


if __name__ == "__main__":
    main()
