"""Settings of the demo site. Everything lives on this machine, shared by every
process (runserver, gunicorn workers, uvicorn, the task worker): progress in a
file-based cache under ``.demo-cache/``; browser sessions and the task queue in
``demo/db.sqlite3``. Jobs run in a Django Tasks worker (django-tasks-db's
``db_worker``, which ``make demo`` starts), as they would in production.

Environment overrides (used by the browser tests): ``DEMO_HTMX_VERSION`` (2 or 4),
``DEMO_CACHE_DIR``, ``DEMO_DB``, ``DEMO_SPEED`` (job speed factor), ``DEMO_DEBUG``,
``DEMO_RUNNER`` ("django_tasks", or "threads" to run jobs in the web process).
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "demo"

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DEMO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"
ASGI_APPLICATION = "demo.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
LANGUAGE_CODE = "en"

INSTALLED_APPS = [
    # The admin links to progress_ui's staff page ("Progress sessions").
    "django.contrib.admin",
    "django.contrib.messages",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "django_cotton",
    "django_htmx",
    "progress_ui",
    # Django 6 ships django.tasks; Django 5.2 needs the django-tasks backport app.
    *([] if find_spec("django.tasks") else ["django_tasks"]),
    "django_tasks_db",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [DEMO_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB", str(DEMO_DIR / "db.sqlite3")),
        # The web server and the worker write at once: wait for the lock.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}

# The task queue: rows in the demo's SQLite database, run by `manage.py db_worker`.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# One cache shared by every process on this machine, no server needed.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": os.environ.get("DEMO_CACHE_DIR", str(ROOT / ".demo-cache")),
        "OPTIONS": {"MAX_ENTRIES": 5000},
    }
}

STATIC_URL = "/static/"

PROGRESS_UI = {
    "HTMX_VERSION": int(os.environ.get("DEMO_HTMX_VERSION", "2")),
    "POLL_INTERVAL": 0.1,
    "RUNNER": os.environ.get("DEMO_RUNNER", "django_tasks"),
}

#: Multiplies the pace of the demo jobs (the browser tests run them faster).
DEMO_SPEED = float(os.environ.get("DEMO_SPEED", "1"))
#: Also show the jobs meant for the browser tests.
DEMO_SHOW_ALL_JOBS = os.environ.get("DEMO_SHOW_ALL_JOBS", "") == "1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"progress_ui": {"handlers": ["console"], "level": "INFO"}},
}
