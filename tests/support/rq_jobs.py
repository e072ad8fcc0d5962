"""The RQ jobs of the RQ tests: ``rq worker`` (or django-rq's ``rqworker``) imports them.

Broker: Redis, database 12 by default (``PROGRESS_RQ_URL``), apart from the
progress cache (``REDIS_URL``), so that clearing the cache never drops a job.
Every test run uses a queue of its own (``PROGRESS_RQ_QUEUE``, made up here
when unset; the test passes it to the worker), so a stale job of an earlier run
never reaches this run's worker. Importing this module sets Django up: a plain
``rq worker`` does not.
"""

from __future__ import annotations

import os
import secrets
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.rq_settings")
django.setup()

from django.core.cache import caches  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402

from progress_ui import ProgressError  # noqa: E402
from progress_ui.contrib.rq import progress_task  # noqa: E402
from progress_ui.engine.work import TaskProgress  # noqa: E402

BROKER_URL = os.environ.get("PROGRESS_RQ_URL", "redis://127.0.0.1:6379/12")
QUEUE_NAME = os.environ.get("PROGRESS_RQ_QUEUE") or f"progress-ui-rq-{secrets.token_hex(6)}"
#: Where jobs leave marks the test process can read (both use this alias).
MARKS = "redis"
SECRET = "postgres://admin:hunter2@db.internal/prod"

queue = Queue(QUEUE_NAME, connection=Redis.from_url(BROKER_URL))


def mark(key: str) -> None:
    """Record that a job's work ran, and in which process."""
    caches[MARKS].set(key, os.getpid(), 300)


@progress_task(queue=queue)
def count_to(progress: TaskProgress, total: int, delay: float, mark_key: str = "") -> int:
    """Counts to ``total``, ``delay`` seconds a step, telling its pid."""
    if mark_key:
        mark(mark_key)
    progress.update(current=0, total=total, message=f"pid {os.getpid()}")
    for i in range(1, total + 1):
        time.sleep(delay)
        progress.update(current=i)
    return total


@progress_task(queue=queue)
def fail_with(progress: TaskProgress, kind: str) -> None:
    progress.update(percent=30)
    if kind == "progress":
        raise ProgressError("Supplier feed returned 503")
    raise RuntimeError(f"could not connect to {SECRET}")


@progress_task(queue=queue)
def flaky(progress: TaskProgress, fails: int, count_key: str) -> str:
    """Fails on its first ``fails`` attempts (counted in ``count_key``)."""
    cache = caches[MARKS]
    cache.add(count_key, 0, 300)
    attempt = cache.incr(count_key)
    progress.update(current=attempt, total=fails + 1)
    if attempt <= fails:
        raise ProgressError("Supplier feed returned 503")
    return "done"


@progress_task(queue=queue)
async def async_flaky(progress: TaskProgress, fails: int, count_key: str) -> str:
    """``flaky`` as ``async def``: its retryable error surfaces when awaited."""
    cache = caches[MARKS]
    cache.add(count_key, 0, 300)
    attempt = cache.incr(count_key)
    await progress.aupdate(current=attempt, total=fails + 1)
    if attempt <= fails:
        raise ProgressError("Supplier feed returned 503")
    return "done"


@progress_task(queue=queue)
def wait_until_cancelled(progress: TaskProgress, timeout: float, mark_key: str = "") -> None:
    """Reports every 50 ms until cancelled (or ``timeout`` seconds pass)."""
    if mark_key:
        mark(mark_key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress.update(message=f"pid {os.getpid()}")
        time.sleep(0.05)
