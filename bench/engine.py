"""Engine costs, per backend: threads started per task, cache writes per second of a
running task with no news, and the cost of reading a snapshot.

    .venv/bin/python bench/engine.py [--backends locmem,file,db,redis] [--seconds 3]

Uses tests/support/settings.py (Redis at REDIS_URL, default redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from concurrent.futures import Future

os.environ.setdefault("PROGRESS_TEST_DB", "/tmp/progress-bench.sqlite3")
os.environ.setdefault("PROGRESS_TEST_CACHE_DIR", "/tmp/progress-bench-cache")


class RedisCommands:
    """Commands the Redis server ran since the last :meth:`reset` (INFO
    commandstats, this object's own INFO calls left out)."""

    WRITES = ("set", "setex", "evalsha", "eval", "expire", "del", "unlink")

    def __init__(self) -> None:
        import redis
        from django.conf import settings

        self._client = redis.Redis.from_url(settings.REDIS_URL)
        self._base = self._stats()

    def _stats(self) -> dict[str, int]:
        stats = self._client.info("commandstats")
        return {k[8:]: v["calls"] for k, v in stats.items() if k != "cmdstat_info"}

    def reset(self) -> None:
        self._base = self._stats()

    @property
    def calls(self) -> dict[str, int]:
        now = self._stats()
        return {k: n - self._base.get(k, 0) for k, n in now.items() if n != self._base.get(k, 0)}

    @property
    def writes(self) -> int:
        return sum(n for name, n in self.calls.items() if name in self.WRITES)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="locmem,file,db,redis")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tasks", type=int, default=10)
    args = parser.parse_args()

    import _django  # bench/ is the script's folder, so first on sys.path

    _django.setup()
    from django.core.cache import caches
    from django.core.management import call_command
    from django.test.utils import override_settings

    from progress_ui import ProgressSession
    from tests.support.cache_counter import CacheCounter

    call_command("migrate", verbosity=0, run_syncdb=True)
    call_command("createcachetable", verbosity=0)
    print(f"{args.tasks} tasks per session; {args.seconds:.0f} s idle window\n")
    print(
        "| backend | threads started per task | writes/s, running task, no news, "
        "10 Hz viewer | snapshot: cache calls | snapshot: median us | update: median us |"
    )
    print("|---|---|---|---|---|---|")
    for alias in args.backends.split(","):
        with override_settings(PROGRESS_UI={"CACHE_ALIAS": alias}):
            tasks = {f"t{i}": f"Task {i}" for i in range(args.tasks)}
            session = ProgressSession.create(tasks)
            before = threading.active_count()
            futures: list[Future[int]] = []
            for i in range(args.tasks):
                if i % 2:
                    session.start(f"t{i}")
                else:
                    futures.append(Future())
                    session.add_parallel(f"t{i}", futures[-1])
            threads_per_task = (threading.active_count() - before) / args.tasks

            # On Redis the engine talks to redis-py directly: count server commands.
            counter: CacheCounter | RedisCommands = (
                RedisCommands() if alias == "redis" else CacheCounter(caches[alias])
            )
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                session.to_dict()
                time.sleep(0.1)
            writes_per_s = counter.writes / args.seconds

            counter.reset()
            session.to_dict()
            per_snapshot = dict(counter.calls)

            samples = []
            for _ in range(200):
                t0 = time.perf_counter()
                session.to_dict()
                samples.append((time.perf_counter() - t0) * 1e6)
            update_samples = []
            for n in range(200):
                t0 = time.perf_counter()
                session.update("t1", current=n, total=200)
                update_samples.append((time.perf_counter() - t0) * 1e6)
            for f in futures:
                f.set_result(1)
            session.delete()
            print(
                f"| {alias} | {threads_per_task:.0f} | {writes_per_s:.1f} | {per_snapshot} | "
                f"{statistics.median(samples):.0f} | {statistics.median(update_samples):.0f} |"
            )


if __name__ == "__main__":
    main()
