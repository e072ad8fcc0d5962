"""The job of ``bench/fanout.py``'s writer-flood row: one task whose loop calls
``update()`` about 10,000 times a second, against the same loop without it.

    python bench/fanout_flood.py [--item-us 100]

Creates a session of one task and prints one JSON line with its id. Reads one
line ``[A, B]`` (the measuring window, epoch seconds) from stdin. Until ``A`` it
runs the loop without progress calls: each item spins for ``--item-us``
microseconds of this thread's CPU time (100: 10,000 items a second on an idle
core). From ``A`` to ``B`` it runs the same loop calling
``session.update("a", current=i, total=..., message="t=<now>")`` after every
item (viewers measure their lag from that time). Then it completes the task
(whatever ``update()`` held back is stored by then), prints one JSON line and
deletes the session: items per second of the process's CPU time (every
thread's: a flush thread's writes count) in each loop, the same per second of
wall time, the ``update()`` calls, and the Redis commands this process sent
while updating, by name.

Per CPU second, not per wall second: on a machine shared with other work (the
load generator, the server, other jobs), a process waits for a core for
unrelated reasons, and a wall-clock rate measures that.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import _django  # bench/ is the script's folder, so first on sys.path

_django.setup(cache="redis")

from fanout import COMMANDS, _count_redis_commands  # noqa: E402

from progress_ui import ProgressSession  # noqa: E402


def spin(seconds: float) -> None:
    """``seconds`` of this thread's CPU time."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--item-us", type=float, default=100.0, help="work per item")
    args = parser.parse_args()
    item = args.item_us / 1e6
    _count_redis_commands()
    session = ProgressSession.create({"a": "Import"})
    session.update("a", current=0, total=1, message=f"t={time.time():.6f}")
    print(json.dumps({"ids": [session.session_id]}), flush=True)
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("no window on stdin")
    start, end = json.loads(line)
    try:
        bare = 0
        began, cpu = time.perf_counter(), time.process_time()
        while time.time() < start:
            spin(item)
            bare += 1
        bare_wall = bare / (time.perf_counter() - began)
        bare_rate = bare / (time.process_time() - cpu)
        total = int((end - start) * 1.2 / item)
        COMMANDS.clear()
        updated = 0
        began, cpu = time.perf_counter(), time.process_time()
        while time.time() < end:
            spin(item)
            updated += 1
            session.update("a", current=updated, total=total, message=f"t={time.time():.6f}")
        progress_wall = updated / (time.perf_counter() - began)
        progress_rate = updated / (time.process_time() - cpu)
        commands = dict(COMMANDS)
        session.complete("a")
        print(
            json.dumps(
                {
                    "bare_rate": bare_rate,
                    "progress_rate": progress_rate,
                    "bare_wall": bare_wall,
                    "progress_wall": progress_wall,
                    "updates": updated,
                    "commands": commands,
                }
            ),
            flush=True,
        )
        time.sleep(2.0)  # the viewers see the ending
    finally:
        session.delete()


if __name__ == "__main__":
    main()
