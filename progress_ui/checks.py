"""System checks for configurations that only fail in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import router

from .conf import settings
from .runners import get_runner

#: Backends whose data lives in one process: other processes cannot see progress.
PER_PROCESS_BACKENDS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.caches, Tags.compatibility)
def check_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    configured = getattr(django_settings, "CACHES", {})
    alias = settings.CACHE_ALIAS
    if alias not in configured:
        return [
            Error(
                f"PROGRESS_UI['CACHE_ALIAS'] is {alias!r}, which is not in CACHES.",
                hint=f"Use one of: {', '.join(configured) or '(none configured)'}.",
                id="progress_ui.E001",
            )
        ]
    backend = configured[alias].get("BACKEND", "")
    if backend == "django.core.cache.backends.dummy.DummyCache":
        return [
            Error(
                f"The cache {alias!r} used by progress_ui is DummyCache: it stores nothing, "
                "so no progress can be read.",
                hint="Point PROGRESS_UI['CACHE_ALIAS'] at Redis, database or file-based cache.",
                id="progress_ui.E002",
            )
        ]
    if backend == "django.core.cache.backends.db.DatabaseCache":
        return _check_database_cache(alias)
    if backend in PER_PROCESS_BACKENDS and not django_settings.DEBUG:
        return [
            Warning(
                f"The cache {alias!r} used by progress_ui is per-process ({backend}): "
                "progress written by one web or worker process is invisible to the others.",
                hint="Point PROGRESS_UI['CACHE_ALIAS'] at a RedisCache, DatabaseCache "
                "or FileBasedCache.",
                id="progress_ui.W001",
            )
        ]
    return []


def _check_database_cache(alias: str) -> list[CheckMessage]:
    cache_model = caches[alias].cache_model_class  # type: ignore[attr-defined]
    db_alias = router.db_for_write(cache_model)
    db: dict[str, Any] = django_settings.DATABASES.get(db_alias, {})
    sqlite = db.get("ENGINE") == "django.db.backends.sqlite3"
    if sqlite and db.get("OPTIONS", {}).get("transaction_mode") != "IMMEDIATE":
        return [
            Warning(
                f"progress_ui uses DatabaseCache {alias!r} on SQLite without "
                "transaction_mode='IMMEDIATE': concurrent progress writes can fail with "
                "'database is locked', and DatabaseCache drops such writes silently.",
                hint=f"Set DATABASES[{db_alias!r}]['OPTIONS']['transaction_mode'] = 'IMMEDIATE'.",
                id="progress_ui.W002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_runner(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The runner of the view mixins loads; threads outside DEBUG get a warning."""
    runner = settings.RUNNER
    try:
        get_runner(runner)
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="progress_ui.E003")]
    if runner == "threads" and not django_settings.DEBUG:
        return [
            Warning(
                "progress_ui's view mixins run jobs in threads of the web process "
                "(PROGRESS_UI['RUNNER'] = 'threads'): a deploy, a restart or a worker "
                "timeout kills the job, and its bar turns to an error.",
                hint="Set PROGRESS_UI['RUNNER'] to 'django_tasks' or 'celery' and run their "
                "workers; silence progress_ui.W003 if threads are what you want.",
                id="progress_ui.W003",
            )
        ]
    return []


@register(Tags.security)
def check_ownership(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Anonymous visitors own their sessions through Django's session framework."""
    middleware = getattr(django_settings, "MIDDLEWARE", None) or []
    if "django.contrib.sessions.middleware.SessionMiddleware" not in middleware:
        return [
            Warning(
                "SessionMiddleware is not installed: progress sessions that anonymous "
                "visitors start (ProgressSession.create(request=...), StartProgressMixin) "
                "get no owner, so anyone who learns an id can read and cancel them.",
                hint="Add django.contrib.sessions.middleware.SessionMiddleware to MIDDLEWARE, "
                "or require login for the views that start work.",
                id="progress_ui.W004",
            )
        ]
    return []
