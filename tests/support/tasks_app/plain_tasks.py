"""Progress tasks with Django's default options only, which every backend
accepts: ``tasks.py``'s ``fail_visibly`` has a priority, which django-tasks-rq
rejects when the module is imported (its ``RQBackend`` has no priorities).
Used by the backend tests (``tests/integration/test_contrib_django_tasks_backends.py``)."""

from __future__ import annotations

import os
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches

from progress_ui import ProgressError, TaskProgress
from progress_ui.contrib.django_tasks import progress_task


def pid_message() -> str:
    return f"pid {os.getpid()}"


@progress_task
def count_to(progress: TaskProgress, total: int) -> dict[str, Any]:
    for _ in progress.iterate(range(total), message=pid_message()):
        pass
    return {"pid": os.getpid(), "count": total}


@progress_task
def fail_visibly(progress: TaskProgress, message: str) -> None:
    progress.update(percent=30, message=pid_message())
    raise ProgressError(message)


@progress_task
def fail_badly(progress: TaskProgress) -> None:
    progress.update(percent=10, message=pid_message())
    raise RuntimeError("password=hunter2 in /etc/secret.conf")


def release_key(session_id: str) -> str:
    return f"progress-test-release:{session_id}"


@progress_task
def wait_for_release(progress: TaskProgress, timeout: float) -> int:
    """Report half the work, then wait (bounded) until the test releases it
    through the progress cache: the test sees progress while the task runs."""
    progress.update(current=1, total=2, message=f"halfway in {pid_message()}")
    cache = caches[settings.PROGRESS_UI["CACHE_ALIAS"]]
    deadline = time.monotonic() + timeout
    while not cache.get(release_key(progress.session_id or "")):
        if time.monotonic() > deadline:
            raise ProgressError("Never released.")
        time.sleep(0.05)
    progress.update(current=2, message=f"done in {pid_message()}")
    return os.getpid()
