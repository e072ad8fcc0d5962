"""System checks for configurations that only fail in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import settings

#: Backends whose data lives in one process: other processes cannot see progress.
PER_PROCESS_BACKENDS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.caches, Tags.compatibility)
def check_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    caches = getattr(django_settings, "CACHES", {})
    alias = settings.CACHE_ALIAS
    if alias not in caches:
        return [
            Error(
                f"PROGRESS_UI['CACHE_ALIAS'] is {alias!r}, which is not in CACHES.",
                hint=f"Use one of: {', '.join(caches) or '(none configured)'}.",
                id="progress_ui.E001",
            )
        ]
    backend = caches[alias].get("BACKEND", "")
    if backend == "django.core.cache.backends.dummy.DummyCache":
        return [
            Error(
                f"The cache {alias!r} used by progress_ui is DummyCache: it stores nothing, "
                "so no progress can be read.",
                hint="Point PROGRESS_UI['CACHE_ALIAS'] at Redis, database or file-based cache.",
                id="progress_ui.E002",
            )
        ]
    if backend in PER_PROCESS_BACKENDS and not django_settings.DEBUG:
        return [
            Warning(
                f"The cache {alias!r} used by progress_ui is per-process ({backend}): "
                "progress written by one web or worker process is invisible to the others.",
                hint="Use RedisCache, DatabaseCache or FileBasedCache for PROGRESS_UI['CACHE_ALIAS'].",
                id="progress_ui.W001",
            )
        ]
    return []
