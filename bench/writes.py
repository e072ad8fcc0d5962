"""What a progress write costs on Redis, next to a bare ``cache.set`` of the same data.

    .venv/bin/python bench/writes.py [--writes 2000] [--rounds 5]

Times ``session.update(task, current=i, total=n, message=...)`` on a 2-task
session, and ``cache.set(key, record)`` of that task's stored record through the
same Django cache, in alternating rounds (the machine is shared and noisy: the
ratio of neighbouring rounds is what counts). Prints per-write medians and the
ratio, and the Redis commands one update sends (``INFO commandstats``).

Uses tests/support/settings.py (Redis at REDIS_URL, default redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import argparse
import statistics
import time

import _django  # bench/ is the script's folder, so first on sys.path

_django.setup(cache="redis")

from django.conf import settings  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from progress_ui import ProgressSession  # noqa: E402
from progress_ui.engine import store  # noqa: E402


def commands_of_one_update(session: ProgressSession) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)

    def calls() -> dict[str, int]:
        return {k: v["calls"] for k, v in client.info("commandstats").items()}

    before = calls()
    session.update("a", current=1, total=2, message="one")
    after = calls()
    changed = {k[8:]: after[k] - before.get(k, 0) for k in after}
    return {k: v for k, v in changed.items() if v and k != "info"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "redis"}):
        session = ProgressSession.create({"a": "Import", "b": "Report"})
        session.update("a", percent=1)  # the first write of an object reads first
        cache = store.cache()
        key = store.task_key(session.session_id, "a") + ":bare"
        updates, sets = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for i in range(args.writes):
                session.update("a", current=i, total=args.writes, message=f"row {i}")
            updates.append((time.perf_counter() - start) / args.writes)
            record = store.read_task(session.session_id, "a")
            start = time.perf_counter()
            for _ in range(args.writes):
                cache.set(key, record, 300)
            sets.append((time.perf_counter() - start) / args.writes)
        ratios = [u / s for u, s in zip(updates, sets, strict=True)]
        print(f"{args.rounds} rounds of {args.writes} writes, Redis at {settings.REDIS_URL}")
        print(f"update():   median {statistics.median(updates) * 1e6:6.0f} us per write")
        print(f"cache.set(): median {statistics.median(sets) * 1e6:6.0f} us per write")
        print(f"ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}")
        print(f"ratio, median: {statistics.median(ratios):.2f}")
        print(f"Redis commands of one update: {commands_of_one_update(session)}")
        session.delete()
        cache.delete(key)


if __name__ == "__main__":
    main()
