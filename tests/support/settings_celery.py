"""Settings of the Celery worker in the Celery tests (``tests/support/celery_app.py``):
the test settings with progress in the Redis cache, which the test process
uses too (see ``tests/integration/test_contrib_celery.py``)."""

from __future__ import annotations

import json
import os

from tests.support.settings import *  # noqa: F403

PROGRESS_UI = {"CACHE_ALIAS": "redis", **json.loads(os.environ.get("PROGRESS_TEST_UI", "{}"))}
