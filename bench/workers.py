"""Real workers: liveness cost, worker loss, cancel, and jobs with Redis stopped.

    .venv/bin/python bench/workers.py [--runs 10] [--window 20] [--only liveness,loss,cancel,outage]

Measures, with the default liveness settings (a beat every 5 s, keys living 10 s):

- liveness writes per process per second, with 1 and with 100 running tasks;
- from SIGKILL of the worker to the error reaching a viewer (a reader polling
  10 times a second, as a stream does), for a plain child process, django-tasks-db's
  ``db_worker`` and a ``celery worker``: ``--runs`` jobs each, killed at once;
- cancel: from ``session.cancel()`` (what the Cancel button's view calls) to the
  bar showing it, and to the job in a ``db_worker`` stopping at its next step;
- jobs in a ``db_worker`` whose progress cache (a Redis server of its own) is
  stopped mid-run: how many finish with their result.

Uses Redis at 127.0.0.1:6379 (database 13 for progress, 14 for Celery's broker),
a temporary SQLite file for the task queue, and stops every process it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

FOLDER = Path(tempfile.mkdtemp(prefix="progress-bench-workers-"))
os.environ["PROGRESS_TEST_DB"] = str(FOLDER / "queue.sqlite3")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ["PROGRESS_TEST_CACHE"] = "redis"
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.support.settings_tasks"


def stats(values: list[float], unit: str = "s") -> str:
    scale = 1000 if unit == "ms" else 1
    median, top = statistics.median(values) * scale, max(values) * scale
    return f"median {median:.1f} {unit}, max {top:.1f} {unit} (n={len(values)})"


def wait_all(
    sessions: list, done: Callable[[dict], bool], start: float, timeout: float
) -> list[float]:
    """Seconds from ``start`` until each session's snapshot satisfies ``done``,
    reading every 0.1 s as a stream would."""
    seen: dict[int, float] = {}
    deadline = start + timeout
    while len(seen) < len(sessions) and time.monotonic() < deadline:
        for n, session in enumerate(sessions):
            if n not in seen and done(session.to_dict()):
                seen[n] = time.monotonic() - start
        time.sleep(0.1)
    if len(seen) < len(sessions):
        raise SystemExit(f"only {len(seen)} of {len(sessions)} reached the state in {timeout}s")
    return [seen[n] for n in range(len(sessions))]


def lost(snapshot: dict) -> bool:
    return any(t["message"] == "The worker stopped responding." for t in snapshot["tasks"].values())


def running(snapshot: dict) -> bool:
    return all("pid" in t["message"] for t in snapshot["tasks"].values())


def bench_liveness(window: float) -> None:
    from django.test.utils import override_settings

    from progress_ui import ProgressSession
    from progress_ui.engine import store

    beats: list[float] = []
    original = store.mark_alive
    store.mark_alive = lambda token, ttl: (beats.append(time.monotonic()), original(token, ttl))  # type: ignore[assignment]
    print("| running tasks in this process | liveness writes/s |")
    print("|---|---|")
    try:
        for n in (1, 100):
            with override_settings(PROGRESS_UI={"CACHE_ALIAS": "redis"}):
                session = ProgressSession.create({f"t{i}": f"T{i}" for i in range(n)})
                for i in range(n):
                    session.start(f"t{i}")
                before = len(beats)
                time.sleep(window)
                print(f"| {n} | {(len(beats) - before) / window:.2f} |")
                session.cancel()
    finally:
        store.mark_alive = original  # type: ignore[assignment]


def bench_loss(runs: int) -> None:
    from progress_ui import ProgressSession
    from progress_ui.contrib.threads import get_runner
    from tests.support.workers import (
        db_worker_command,
        kill_process,
        running_process,
        start_process,
    )

    env = {"PROGRESS_TEST_CACHE": "redis", "REDIS_URL": os.environ["REDIS_URL"]}
    print("| runner | SIGKILL to error seen by a viewer |")
    print("|---|---|")

    # A plain child process per job.
    with ExitStack() as stack:
        sessions = [ProgressSession.create({"held": "Held"}) for _ in range(runs)]
        children = [
            stack.enter_context(
                running_process(
                    [sys.executable, "-m", "tests.support.hold_task", s.session_id, "held"],
                    env=env,
                    ready="holding",
                )
            )
            for s in sessions
        ]
        start = time.monotonic()
        for child in children:
            kill_process(child)
        print(f"| plain child process | {stats(wait_all(sessions, lost, start, 90))} |")

    # One db_worker per job (a db_worker runs one task at a time).
    with ExitStack() as stack:
        workers = [
            stack.enter_context(running_process(db_worker_command(), env=env, ready="Starting"))
            for _ in range(runs)
        ]
        sessions = [ProgressSession.create({"job": "Job"}) for _ in range(runs)]
        for s in sessions:
            get_runner("django_tasks")(s, "tests.support.jobs.slow_job", {"seconds": 120})
        wait_all(sessions, running, time.monotonic(), 60)
        start = time.monotonic()
        for worker in workers:
            kill_process(worker)
        print(f"| django-tasks-db db_worker | {stats(wait_all(sessions, lost, start, 90))} |")

    # One celery worker with a child per job.
    from celery import _state

    import tests.support.celery_app as capp

    capp.app.set_current()
    argv = [
        sys.executable, "-m", "celery", "-A", "tests.support.celery_app", "worker",
        "--pool=prefork", f"--concurrency={runs}", "--without-gossip",
        "--without-mingle", "--without-heartbeat", "--queues", capp.QUEUE,
        "--loglevel=INFO",
    ]  # fmt: skip
    celery_env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "tests.support.settings_celery",
        "PROGRESS_CELERY_QUEUE": capp.QUEUE,
    }
    worker = start_process(argv, env=celery_env, ready="ready", timeout=60)
    try:
        sessions = [ProgressSession.create({"job": "Job"}) for _ in range(runs)]
        for s in sessions:
            get_runner("celery")(s, "tests.support.jobs.slow_job", {"seconds": 120})
        wait_all(sessions, running, time.monotonic(), 60)
        start = time.monotonic()
        kill_process(worker)  # the main process and its children
        print(f"| celery worker (prefork) | {stats(wait_all(sessions, lost, start, 90))} |")
    finally:
        from tests.support.workers import stop_process

        stop_process(worker)
        _state.default_app.set_current()


def bench_cancel(runs: int) -> None:
    from django.conf import settings
    from django.core.cache import caches

    from progress_ui import ProgressSession
    from progress_ui.contrib.threads import get_runner
    from tests.support.jobs import stopped_key
    from tests.support.workers import db_worker_command, running_process

    env = {"PROGRESS_TEST_CACHE": "redis", "REDIS_URL": os.environ["REDIS_URL"]}
    cache = caches[settings.PROGRESS_UI["CACHE_ALIAS"]]
    shown, stopped = [], []
    with running_process(db_worker_command(), env=env, ready="Starting"):
        for _ in range(runs):
            session = ProgressSession.create({"job": "Job"})
            get_runner("django_tasks")(session, "tests.support.jobs.slow_job", {"seconds": 60})
            wait_all([session], running, time.monotonic(), 60)
            clicked, wall = time.monotonic(), time.time()
            session.cancel()
            shown += wait_all([session], lambda s: s["status"] == "cancelled", clicked, 10)
            deadline = time.monotonic() + 10
            while (at := cache.get(stopped_key(session.session_id))) is None:
                if time.monotonic() > deadline:
                    raise SystemExit("the job did not stop")
                time.sleep(0.01)
            stopped.append(at - wall)
    print("| cancel | time |")
    print("|---|---|")
    print(f"| to the bar showing it (next read) | {stats(shown, 'ms')} |")
    print(f"| to the job stopping in the db_worker | {stats(stopped, 'ms')} |")


def bench_outage(jobs: int) -> None:
    from django.db import connection
    from django.test.utils import override_settings

    from progress_ui import ProgressSession
    from progress_ui.contrib.threads import get_runner
    from tests.support.workers import (
        db_worker_command,
        kill_process,
        running_process,
        start_process,
    )

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    redis = start_process(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        ready="Ready to accept connections",
    )
    url = f"redis://127.0.0.1:{port}/0"
    env = {"PROGRESS_TEST_CACHE": "redis", "REDIS_URL": url}
    alias = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    from django.conf import settings

    try:
        with (
            override_settings(
                CACHES={**settings.CACHES, "private": alias},
                PROGRESS_UI={"CACHE_ALIAS": "private"},
            ),
            running_process(db_worker_command(), env=env, ready="Starting"),
        ):
            sessions = [ProgressSession.create({"job": "Job"}) for _ in range(jobs)]
            for s in sessions:
                get_runner("django_tasks")(s, "tests.support.jobs.steady_job", {"steps": 30})
            time.sleep(2.0)  # some jobs done, one under way, the rest queued
            kill_process(redis)
            deadline = time.monotonic() + 120
            while True:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT status, count(*) FROM django_tasks_database_dbtaskresult "
                        "WHERE args_kwargs LIKE %s GROUP BY status",
                        ["%tests.support.jobs.steady_job%"],
                    )
                    counts = dict(cursor.fetchall())
                if sum(counts.get(s, 0) for s in ("SUCCESSFUL", "FAILED")) >= jobs:
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        print("| jobs | Redis killed after | finished with their result | failed |")
        print("|---|---|---|---|")
        print(f"| {jobs} | 2.0 s | {counts.get('SUCCESSFUL', 0)} | {counts.get('FAILED', 0)} |")
    finally:
        from tests.support.workers import stop_process

        stop_process(redis)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--only", default="liveness,loss,cancel,outage")
    args = parser.parse_args()

    import _django

    _django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    only = args.only.split(",")
    print(f"settings: {json.dumps({'beat': 5.0, 'stale': 10.0})} (defaults)\n")
    if "liveness" in only:
        bench_liveness(args.window)
        print()
    if "loss" in only:
        bench_loss(args.runs)
        print()
    if "cancel" in only:
        bench_cancel(args.runs)
        print()
    if "outage" in only:
        bench_outage(2 * args.runs)


if __name__ == "__main__":
    main()
