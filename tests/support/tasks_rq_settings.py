"""Settings of the Django Tasks backend tests' django-tasks-rq worker (django-rq's
``manage.py rqworker --job-class django_tasks_rq.Job``) and, through
``override_settings``, of the test process: django-tasks-rq's ``RQBackend`` on
django-rq's ``default`` queue, on the Redis database of ``PROGRESS_RQ_URL``
(database 12 by default; the tests pass the progress cache's own), with progress
in the Redis cache (see ``tests/integration/test_contrib_django_tasks_backends.py``).

On Django 5.2 ``django_tasks_rq`` uses the django-tasks backport, which needs its app."""

from __future__ import annotations

from importlib.util import find_spec

from tests.support.rq_settings import *  # noqa: F403
from tests.support.rq_settings import INSTALLED_APPS, RQ_URL

_BACKPORT = [] if find_spec("django.tasks") else ["django_tasks"]
INSTALLED_APPS = [*INSTALLED_APPS, *_BACKPORT, "django_tasks_rq"]
RQ_QUEUES = {"default": {"URL": RQ_URL}}
TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
