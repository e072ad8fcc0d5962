"""Settings for the browser tests: the demo project, with everything shared
between the test process and the live server kept in one temporary folder
(file-based cache for progress and for Django sessions). Jobs run in threads of
the server, or, with ``DEMO_RUNNER=django_tasks``, in a db_worker that the test
starts on the same SQLite file (``PROGRESS_BROWSER_DB``)."""

from __future__ import annotations

import json
import os

from demo.settings import *  # noqa: F403
from demo.settings import ROOT

_CACHE_DIR = os.environ.get("PROGRESS_BROWSER_CACHE_DIR", str(ROOT / ".test-cache" / "browser"))

DEBUG = False
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": _CACHE_DIR,
        "OPTIONS": {"MAX_ENTRIES": 10000},
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_CACHE_DIR, "unused.sqlite3"),
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
DATABASES["default"]["NAME"] = os.environ.get(
    "PROGRESS_BROWSER_DB", os.path.join(_CACHE_DIR, "db.sqlite3")
)
#: Threads in the web process, unless a test starts a db_worker beside the server.
PROGRESS_UI = {
    **PROGRESS_UI,  # noqa: F405
    "RUNNER": os.environ.get("DEMO_RUNNER", "threads"),
    **json.loads(os.environ.get("PROGRESS_TEST_UI", "{}")),
}
DEMO_SPEED = float(os.environ.get("DEMO_SPEED", "3"))
DEMO_SHOW_ALL_JOBS = True
LOGGING = {"version": 1, "disable_existing_loggers": False}
