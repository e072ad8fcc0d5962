"""Settings of the Django Tasks backend tests' Huey consumer (``manage.py run_huey``)
and, through ``override_settings``, of the test process: Huey 3's Django Tasks
backend on Redis (``PROGRESS_HUEY_URL``, database 13 by default), under a
queue name of the test run's own (``PROGRESS_HUEY_NAME``), with progress in the
Redis cache (see ``tests/integration/test_contrib_django_tasks_backends.py``)."""

from __future__ import annotations

import os

from tests.support.rq_settings import *  # noqa: F403
from tests.support.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "huey.contrib.djhuey"]
HUEY_URL = os.environ.get("PROGRESS_HUEY_URL", "redis://127.0.0.1:6379/13")
HUEY = {
    "huey_class": "huey.PriorityRedisHuey",  # the tasks have priorities
    "name": os.environ.get("PROGRESS_HUEY_NAME", "progress-ui-huey"),
    "immediate": False,
    "connection": {"url": HUEY_URL},
    "consumer": {"workers": 2, "worker_type": "thread"},
}
TASKS = {"default": {"BACKEND": "huey.contrib.djhuey.tasks_backend.HueyBackend"}}
