"""Settings of the Django Tasks backend tests' django-tasks-redis worker
(``manage.py run_redis_tasks --continuous``) and, through ``override_settings``,
of the test process: ``RedisTaskBackend`` on ``PROGRESS_TASKS_REDIS_URL``
(database 13 by default; the tests pass the progress cache's own) under a key
prefix of the test run's own (``PROGRESS_TASKS_REDIS_PREFIX``), with progress in
the Redis cache (see ``tests/integration/test_contrib_django_tasks_backends.py``).
django-tasks-redis needs Django 6 (``django.tasks``)."""

from __future__ import annotations

import os

from tests.support.rq_settings import *  # noqa: F403
from tests.support.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_redis"]
TASKS_REDIS_URL = os.environ.get("PROGRESS_TASKS_REDIS_URL", "redis://127.0.0.1:6379/13")
TASKS = {
    "default": {
        "BACKEND": "django_tasks_redis.RedisTaskBackend",
        "OPTIONS": {
            "REDIS_URL": TASKS_REDIS_URL,
            "REDIS_KEY_PREFIX": os.environ.get("PROGRESS_TASKS_REDIS_PREFIX", "progress-ui-tasks"),
            # A short blocking read: the worker sees a new task (and a SIGTERM) soon.
            "REDIS_BLOCK_TIMEOUT": 200,
        },
    }
}
