"""System checks for configurations that would otherwise fail later: at the
first request, in production, or silently.

Ids: E001 cache alias unknown, E002 DummyCache, E003 runner does not load,
E004 PROGRESS_UI invalid, E005 URLs not included, E006 cache client library
missing; W001 per-process cache, W002 DatabaseCache on SQLite without IMMEDIATE,
W003 jobs in web threads, W004 no SessionMiddleware, W005 django_cotton missing,
W006 HtmxMiddleware missing.
"""

from __future__ import annotations

from dataclasses import fields
from importlib import import_module
from typing import Any

from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import router
from django.urls import NoReverseMatch, reverse

from .conf import ProgressSettings, current, settings
from .runners import get_runner

#: Client library each cache backend needs, and where it comes from.
CLIENT_LIBRARIES = {
    "django.core.cache.backends.redis.RedisCache": (
        "redis",
        'pip install "django-progress-ui[redis]" (redis-py)',
    ),
    "django.core.cache.backends.memcached.PyMemcacheCache": (
        "pymemcache",
        "pip install pymemcache",
    ),
    "django.core.cache.backends.memcached.PyLibMCCache": ("pylibmc", "pip install pylibmc"),
}


def _importable(module: str) -> bool:
    try:
        import_module(module)
    except ImportError:
        return False
    return True


def _settings_valid() -> bool:
    # An invalid PROGRESS_UI is reported once, by check_settings; the other
    # checks step aside instead of raising.
    try:
        current()
    except ImproperlyConfigured:
        return False
    return True


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """PROGRESS_UI is a dict of known keys with values of the right type."""
    try:
        conf = current()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="Fix settings.PROGRESS_UI (see the README's Settings).",
                id="progress_ui.E004",
            )
        ]
    defaults = ProgressSettings()
    errors: list[CheckMessage] = []
    for field in fields(ProgressSettings):
        value, default = getattr(conf, field.name), getattr(defaults, field.name)
        expected: tuple[type, ...] = (
            (int, float) if isinstance(default, float) else (type(default),)
        )
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, expected):
            errors.append(
                Error(
                    f"PROGRESS_UI[{field.name!r}] is {value!r}; it must be a "
                    f"{type(default).__name__} (default {default!r}).",
                    id="progress_ui.E004",
                )
            )
    return errors


#: Backends whose data lives in one process: other processes cannot see progress.
PER_PROCESS_BACKENDS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.caches, Tags.compatibility)
def check_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not _settings_valid():
        return []
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
    if backend in CLIENT_LIBRARIES and not _importable(CLIENT_LIBRARIES[backend][0]):
        library, install = CLIENT_LIBRARIES[backend]
        return [
            Error(
                f"The cache {alias!r} used by progress_ui ({backend}) needs the "
                f"{library!r} package, which is not installed: every progress read "
                "and write would fail.",
                hint=install,
                id="progress_ui.E006",
            )
        ]
    if backend == "django.core.cache.backends.db.DatabaseCache":
        return _check_database_cache(alias)
    if backend in PER_PROCESS_BACKENDS:
        # In DEBUG too: runserver is one process, but `uvicorn --workers 2`,
        # gunicorn's workers and task workers are not, and the bars then freeze.
        return [
            Warning(
                f"The cache {alias!r} used by progress_ui is per-process ({backend}): "
                "progress written by one web or worker process is invisible to the others "
                "(fine only while one process does everything, as runserver does).",
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
    if not _settings_valid():
        return []
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


@register(Tags.compatibility, Tags.urls)
def check_installation(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What a newcomer forgets: cotton, django-htmx's middleware, the URLs."""
    messages: list[CheckMessage] = []
    if "django_cotton" not in django_settings.INSTALLED_APPS:
        messages.append(
            Warning(
                "django_cotton is not in INSTALLED_APPS: the <c-progress.*> components "
                "would reach the browser as raw tags.",
                hint='Add "django_cotton" to INSTALLED_APPS (the {% progress_* %} template '
                "tags work without it).",
                id="progress_ui.W005",
            )
        )
    if "django_htmx.middleware.HtmxMiddleware" not in (django_settings.MIDDLEWARE or []):
        messages.append(
            Warning(
                "django_htmx's HtmxMiddleware is not in MIDDLEWARE: a POST from htmx to "
                "StartProgressMixin gets the whole page back, swapped into the target.",
                hint='Add "django_htmx.middleware.HtmxMiddleware" to MIDDLEWARE.',
                id="progress_ui.W006",
            )
        )
    try:
        reverse("progress_ui:sse", kwargs={"session_id": "A" * 32})
    except NoReverseMatch:
        messages.append(
            Error(
                "The progress_ui URLs are not included: components cannot name their "
                "stream, and pages fail at the first POST.",
                hint='Add path("progress/", include("progress_ui.urls")) to your URLconf '
                "(from django.urls import include, path).",
                id="progress_ui.E005",
            )
        )
    except Exception:  # noqa: S110  (a broken URLconf is reported by Django's own checks)
        pass
    return messages
