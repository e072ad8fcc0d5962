"""Settings of the Celery worker in the Celery tests (``tests/celery_app.py``):
the test settings with progress in the Redis cache, which the test process
uses too (see ``tests/test_contrib_celery.py``)."""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403

PROGRESS_UI = {"CACHE_ALIAS": "redis", **json.loads(os.environ.get("PROGRESS_TEST_UI", "{}"))}
