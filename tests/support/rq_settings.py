"""Settings of the RQ tests' workers (``rq worker``, django-rq's ``rqworker``) and
of the Dramatiq tests' worker:
the test settings with progress in the Redis cache, which the test process
uses too, and django-rq's queues on the RQ test broker (``PROGRESS_RQ_URL``)."""

from __future__ import annotations

import json
import os

from tests.support.settings import *  # noqa: F403
from tests.support.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_rq"]
RQ_URL = os.environ.get("PROGRESS_RQ_URL", "redis://127.0.0.1:6379/12")
RQ_QUEUES = {
    "default": {"URL": RQ_URL},
    # This test run's own queue (see tests/support/rq_jobs.py).
    os.environ.get("PROGRESS_RQ_QUEUE", "progress-ui-rq"): {"URL": RQ_URL},
}
PROGRESS_UI = {"CACHE_ALIAS": "redis", **json.loads(os.environ.get("PROGRESS_TEST_UI", "{}"))}

# progress_ui's own lines (a cancel's INFO line) in the worker's output.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"progress_ui": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
