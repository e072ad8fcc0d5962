"""Shared fixtures: the progress cache backend under test, and a Redis check."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings

ALL_BACKENDS = ["locmem", "file", "db", "redis"]
#: Backends that different processes share.
SHARED_BACKENDS = ["file", "db", "redis"]


def redis_available() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1).ping())
    except Exception:
        return False


def require_redis() -> None:
    if redis_available():
        return
    message = f"Redis is not reachable at {settings.REDIS_URL} (set REDIS_URL)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}; CI requires it.", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def _cache_table(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> None:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        call_command("createcachetable", "progress_cache", verbosity=0)


def _use_backend(name: str, request: pytest.FixtureRequest) -> Iterator[str]:
    if name == "redis":
        require_redis()
    if name == "db":
        request.getfixturevalue("_cache_table")
    if name == "file":
        shutil.rmtree(settings.CACHE_DIR, ignore_errors=True)
    # A bounded stream length keeps a broken test from hanging the suite.
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": name, "MAX_STREAM_DURATION": 60}):
        caches[name].clear()
        yield name
        caches[name].clear()


# The backend fixtures depend on transactional_db by name: pytest-django only
# runs a test outside a transaction when the fixture is requested statically, and
# other threads and processes must see committed DatabaseCache rows.
@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[str]:
    """Runs the test once per cache backend; yields the cache alias in use."""
    yield from _use_backend(request.param, request)


@pytest.fixture(params=SHARED_BACKENDS)
def shared_backend(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[str]:
    """Runs the test once per backend that separate processes can share."""
    yield from _use_backend(request.param, request)


@pytest.fixture
def locmem() -> Iterator[str]:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "locmem", "MAX_STREAM_DURATION": 60}):
        caches["locmem"].clear()
        yield "locmem"
