"""Settings for the browser tests: the demo project, with everything shared
between the test process and the live server kept in one temporary folder
(file-based cache for progress and for Django sessions; no database needed)."""

from __future__ import annotations

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
    }
}
DEMO_SPEED = float(os.environ.get("DEMO_SPEED", "3"))
DEMO_SHOW_ALL_JOBS = True
LOGGING = {"version": 1, "disable_existing_loggers": False}
