"""Settings for Django Tasks tests and their ``db_worker`` processes: the test
settings plus django-tasks-db.

The test process applies ``TASK_APPS`` and ``TASKS`` with ``override_settings``
(see ``tests/integration/test_contrib_django_tasks.py``); a worker started with
``DJANGO_SETTINGS_MODULE=tests.support.settings_tasks`` uses them directly, with the test
process's database and progress cache passed through the environment
(``PROGRESS_TEST_DB`` or ``PROGRESS_TEST_PG_NAME``, ``PROGRESS_TEST_CACHE``,
``PROGRESS_TEST_CACHE_DIR``, ``REDIS_URL``).
"""

from __future__ import annotations

import os
from importlib.util import find_spec

from tests.support.settings import *  # noqa: F403
from tests.support.settings import INSTALLED_APPS

#: Django 6 has django.tasks; Django 5.2 needs the django-tasks backport app.
HAS_DJANGO_TASKS = find_spec("django.tasks") is not None
TASKS_PACKAGE = "django.tasks" if HAS_DJANGO_TASKS else "django_tasks"
TASK_APPS = ["django_tasks_db"] if HAS_DJANGO_TASKS else ["django_tasks", "django_tasks_db"]
INSTALLED_APPS = [*INSTALLED_APPS, *TASK_APPS]

#: Bare ``@progress_task`` tasks go to the database (what a worker runs);
#: ``.using(backend="immediate")`` runs them in the calling process.
TASKS = {
    # "loss", "clock": the worker-loss and clock-skew tests' own workers and queues.
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "loss", "clock"],
    },
    "immediate": {"BACKEND": f"{TASKS_PACKAGE}.backends.immediate.ImmediateBackend"},
}

POSTGRES = {
    "ENGINE": "django.db.backends.postgresql",
    "HOST": os.environ.get("PROGRESS_TEST_PG_HOST", "127.0.0.1"),
    "PORT": os.environ.get("PROGRESS_TEST_PG_PORT", "5432"),
    "USER": os.environ.get("PROGRESS_TEST_PG_USER", "postgres"),
    "PASSWORD": os.environ.get("PROGRESS_TEST_PG_PASSWORD", ""),
    #: The database to connect to when creating the tests' own database.
    "NAME": os.environ.get("PROGRESS_TEST_PG_ADMIN_DB", "test"),
}

if PG_NAME := os.environ.get("PROGRESS_TEST_PG_NAME"):
    # A worker of the PostgreSQL tests: its only database is the tasks' one.
    DATABASES = {"default": {**POSTGRES, "NAME": PG_NAME, "TEST": {"NAME": PG_NAME}}}
