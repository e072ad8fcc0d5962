"""Minimal settings for the test suite. The progress cache backend is chosen
per test (see ``tests/conftest.py``); ``PROGRESS_TEST_CACHE`` picks it for child
processes started by cross-process tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET_KEY = "tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.support.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "django_cotton",
    "django_htmx",
    "progress_ui",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "demo" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
STATIC_URL = "/static/"

# A file so that child processes share it (DatabaseCache tests, live servers).
DB_FILE = os.environ.get("PROGRESS_TEST_DB", str(BASE_DIR / ".test-db.sqlite3"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DB_FILE,
        "TEST": {"NAME": DB_FILE},
        # BEGIN IMMEDIATE: concurrent DatabaseCache writers wait for the lock
        # instead of failing (which DatabaseCache would swallow silently).
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
    }
}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
CACHE_DIR = os.environ.get("PROGRESS_TEST_CACHE_DIR", str(BASE_DIR / ".test-cache"))

BACKENDS = {
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "file": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": CACHE_DIR,
    },
    "db": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "progress_cache"},
    "redis": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"max_connections": 1000},
    },
}
# Nothing listens on port 9: a real "cache server down" for fault tests.
UNREACHABLE_CACHE = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:9/0",
    "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
}
PROGRESS_TEST_CACHE = os.environ.get("PROGRESS_TEST_CACHE", "locmem")
CACHES = {"default": BACKENDS["locmem"], **BACKENDS, "unreachable": UNREACHABLE_CACHE}
# Child processes get extra PROGRESS_UI settings (fast liveness, say) as JSON.
PROGRESS_UI = {
    "CACHE_ALIAS": PROGRESS_TEST_CACHE,
    **json.loads(os.environ.get("PROGRESS_TEST_UI", "{}")),
}
