"""The broker and actors of the Dramatiq tests: ``dramatiq tests.support.dramatiq_app``.

Broker: Redis, database 11 by default (``PROGRESS_DRAMATIQ_URL``), apart from
the progress cache (``REDIS_URL``). Every test run uses a namespace of its own
(``PROGRESS_DRAMATIQ_NAMESPACE``, made up here when unset; the test passes it
to the worker), so a stale message of an earlier run never reaches this run's
worker. Importing this module sets Django up, then the broker, then the actors.
"""

from __future__ import annotations

import os
import secrets
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.rq_settings")
django.setup()

import dramatiq  # noqa: E402
from django.core.cache import caches  # noqa: E402
from dramatiq.brokers.redis import RedisBroker  # noqa: E402

BROKER_URL = os.environ.get("PROGRESS_DRAMATIQ_URL", "redis://127.0.0.1:6379/11")
NAMESPACE = os.environ.get("PROGRESS_DRAMATIQ_NAMESPACE") or f"progress-{secrets.token_hex(6)}"
broker = RedisBroker(url=BROKER_URL, namespace=NAMESPACE)
dramatiq.set_broker(broker)

from progress_ui import ProgressError  # noqa: E402
from progress_ui.contrib.dramatiq import progress_actor  # noqa: E402
from progress_ui.engine.work import TaskProgress  # noqa: E402

#: Where actors leave marks the test process can read (both use this alias).
MARKS = "redis"
SECRET = "postgres://admin:hunter2@db.internal/prod"


def mark(key: str) -> None:
    caches[MARKS].set(key, os.getpid(), 300)


@progress_actor(max_retries=0)
def count_to(progress: TaskProgress, total: int, delay: float, mark_key: str = "") -> None:
    """Counts to ``total``, ``delay`` seconds a step, telling its pid."""
    if mark_key:
        mark(mark_key)
    progress.update(current=0, total=total, message=f"pid {os.getpid()}")
    for i in range(1, total + 1):
        time.sleep(delay)
        progress.update(current=i)


@progress_actor(max_retries=0)
def fail_with(progress: TaskProgress, kind: str) -> None:
    progress.update(percent=30)
    if kind == "progress":
        raise ProgressError("Supplier feed returned 503")
    raise RuntimeError(f"could not connect to {SECRET}")


@progress_actor(max_retries=3, min_backoff=100, max_backoff=200)
def flaky(progress: TaskProgress, fails: int, count_key: str) -> None:
    """Fails (a retryable error) on its first ``fails`` attempts, counted in ``count_key``."""
    cache = caches[MARKS]
    cache.add(count_key, 0, 300)
    attempt = cache.incr(count_key)
    progress.update(current=attempt, total=fails + 1)
    if attempt <= fails:
        raise ConnectionError("Supplier feed returned 503")


@progress_actor(max_retries=3, min_backoff=100, max_backoff=200)
async def async_flaky(progress: TaskProgress, fails: int, count_key: str) -> None:
    """``flaky`` as ``async def``: its retryable error surfaces when awaited."""
    cache = caches[MARKS]
    cache.add(count_key, 0, 300)
    attempt = cache.incr(count_key)
    await progress.aupdate(current=attempt, total=fails + 1)
    if attempt <= fails:
        raise ConnectionError("Supplier feed returned 503")


@progress_actor(max_retries=2, min_backoff=100, max_backoff=200, throws=())
def unavailable(progress: TaskProgress, count_key: str) -> None:
    """Always fails with a ProgressError, retried (``throws=()``); counts attempts."""
    cache = caches[MARKS]
    cache.add(count_key, 0, 300)
    cache.incr(count_key)
    raise ProgressError("Supplier feed returned 503")


@progress_actor(max_retries=0)
def wait_until_cancelled(progress: TaskProgress, timeout: float, mark_key: str = "") -> None:
    """Reports every 50 ms until cancelled (or ``timeout`` seconds pass)."""
    if mark_key:
        mark(mark_key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress.update(message=f"pid {os.getpid()}")
        time.sleep(0.05)
