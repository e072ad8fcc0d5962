"""The Celery app and tasks of the Celery tests: ``celery -A tests.support.celery_app worker``.

Broker: Redis, database 14 by default (``PROGRESS_CELERY_BROKER``), apart from
the progress cache (database 15), so that clearing the cache never drops a
message. No result backend, unless ``PROGRESS_CELERY_RESULTS`` names one (the
tests' module worker stores results there, so that a test can read the state
Celery recorded for a task). Every test run sends to a queue of its own
(``PROGRESS_CELERY_QUEUE``, made up here when unset; the test passes it to the
worker), so a stale message of an earlier run never reaches this run's worker.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings_celery")
django.setup()

from celery import Celery  # noqa: E402
from django.core.cache import caches  # noqa: E402

from progress_ui import ProgressError  # noqa: E402
from progress_ui.contrib.celery import ProgressTask, progress_task  # noqa: E402
from progress_ui.engine.work import TaskProgress  # noqa: E402

BROKER_URL = os.environ.get("PROGRESS_CELERY_BROKER", "redis://127.0.0.1:6379/14")
QUEUE = os.environ.get("PROGRESS_CELERY_QUEUE") or f"progress-ui-tests-{secrets.token_hex(6)}"
#: Where tasks leave marks the test process can read (both use this alias).
MARKS = "redis"
SECRET = "postgres://admin:hunter2@db.internal/prod"

#: Where the tests' module worker stores task results (see ``results_app``).
RESULTS_URL = BROKER_URL

app = Celery(
    "tests.support.celery_app",
    broker=BROKER_URL,
    backend=os.environ.get("PROGRESS_CELERY_RESULTS") or None,
    set_as_current=False,
)
app.conf.update(
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)


def mark(key: str) -> None:
    """Record that a task's work ran, and in which process."""
    caches[MARKS].set(key, os.getpid(), 300)


@progress_task(app=app)
def count_to(progress: TaskProgress, total: int, delay: float, mark_key: str = "") -> int:
    """Counts to ``total``, ``delay`` seconds a step, telling its pid."""
    if mark_key:
        mark(mark_key)
    progress.update(current=0, total=total, message=f"pid {os.getpid()}")
    for i in range(1, total + 1):
        time.sleep(delay)
        progress.update(current=i)
    return total


@progress_task(app=app)
def fail_with(progress: TaskProgress, kind: str) -> None:
    progress.update(percent=30)
    if kind == "progress":
        raise ProgressError("Supplier feed returned 503")
    raise RuntimeError(f"could not connect to {SECRET}")


@progress_task(app=app, bind=True, max_retries=3)
def flaky(self: ProgressTask[..., str], progress: TaskProgress, fails: int, delay: float) -> str:
    """Fails (retrying after ``delay`` seconds) on its first ``fails`` attempts."""
    progress.update(current=self.request.retries, total=fails + 1)
    if self.request.retries < fails:
        raise self.retry(countdown=delay)
    return "done"


@progress_task(app=app, bind=True, max_retries=3)
async def async_flaky(
    self: ProgressTask[..., str], progress: TaskProgress, fails: int, delay: float
) -> str:
    """``flaky`` as ``async def``: awaits its progress, retries the same way."""
    await progress.aupdate(
        current=self.request.retries, total=fails + 1, message=f"pid {os.getpid()}"
    )
    await asyncio.sleep(0)
    if self.request.retries < fails:
        raise self.retry(countdown=delay)
    return "done"


@progress_task(
    app=app,
    autoretry_for=(ProgressError,),
    max_retries=2,
    retry_backoff=False,
    retry_kwargs={"countdown": 0.5},
)
def unavailable(progress: TaskProgress, count_key: str) -> None:
    """Always fails with a retryable error; counts its attempts."""
    cache = caches[MARKS]
    cache.add(count_key, 0, 300)
    cache.incr(count_key)
    raise ProgressError("Supplier feed returned 503")


def results_app() -> Celery:
    """An app that reads the results the module worker stores (``RESULTS_URL``)."""
    return Celery("tests.support.celery_results", backend=RESULTS_URL, set_as_current=False)


@progress_task(app=app)
def wait_until_cancelled(progress: TaskProgress, timeout: float) -> None:
    """Reports every 50 ms until cancelled (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress.update(message=f"pid {os.getpid()}")
        time.sleep(0.05)
