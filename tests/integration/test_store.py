"""The store backends (``progress_ui.engine.store``): the Redis backend's own clients
follow the cache's public configuration (``LOCATION``, ``OPTIONS``, key making,
Django's value format) for writes, reads, pub/sub and listing, and only errors
that mean "cannot be reached" become ``CacheUnavailable``."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from progress_ui import ProgressSession
from progress_ui.engine import listing, store
from progress_ui.engine.store.cache import CacheBackend
from progress_ui.engine.store.redis import RedisBackend
from progress_ui.streaming.push import ChangeFeed
from tests.conftest import require_redis
from tests.integration.test_cache_outage import free_port
from tests.support.workers import start_process, stop_process

pytestmark = pytest.mark.redis


class JsonSerializer:
    """A serializer as Django's RedisCache OPTIONS take one (``serializer``)."""

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class BrokenSerializer:
    """Reads fail with an AttributeError: a bug, not an outage."""

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value)

    def loads(self, data: bytes) -> Any:
        raise AttributeError("a bug in a serializer")


def redis_cache(**extra: Any) -> dict[str, Any]:
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": settings.REDIS_URL,
        **extra,
    }


@pytest.fixture
def alias(request: pytest.FixtureRequest) -> Iterator[str]:
    """The cache "store" (Redis at REDIS_URL, with the test's ``cache_conf``) as the
    progress cache."""
    require_redis()
    conf = getattr(request, "param", None) or redis_cache()
    with override_settings(
        CACHES={**settings.CACHES, "store": conf}, PROGRESS_UI={"CACHE_ALIAS": "store"}
    ):
        caches["store"].clear()
        yield "store"
        caches["store"].clear()


def test_redis_cache_gets_the_redis_backend_and_others_the_generic_one(locmem: str) -> None:
    assert isinstance(store.backend(), CacheBackend)
    require_redis()
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "redis"}):
        assert isinstance(store.backend(), RedisBackend)
        assert store.backend() is store.backend()  # once per alias


PREFIXED = redis_cache(KEY_PREFIX="site-a", VERSION=3, OPTIONS={"max_connections": 50})


@pytest.mark.parametrize("alias", [PREFIXED], indirect=True)
def test_django_reads_what_the_backend_writes_and_the_reverse(alias: str) -> None:
    backend = store.backend()
    backend.set_many({"x:record": {"status": "running", "floor": 1.5}, "x:int": 1}, 60)
    assert caches[alias].get("x:record") == {"status": "running", "floor": 1.5}
    assert caches[alias].get("x:int") == 1
    caches[alias].set("x:django", ["a", 2], 60)
    caches[alias].set("x:django-int", 7, 60)
    assert backend.get_many(["x:django", "x:django-int", "x:none"]) == {
        "x:django": ["a", 2],
        "x:django-int": 7,
    }
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=40)  # a compare-and-set write
    session.complete("a")  # an ending
    meta = caches[alias].get(store.meta_key(session.session_id))
    assert meta["tasks"] == [["a", "A"]]
    ended = caches[alias].get(store.end_key(session.session_id, "a"))
    assert ended["status"] == "completing"
    assert asyncio.run(backend.aget_many([store.meta_key(session.session_id)])) == {
        store.meta_key(session.session_id): meta
    }


JSON = redis_cache(OPTIONS={"serializer": "tests.integration.test_store.JsonSerializer"})


@pytest.mark.parametrize("alias", [JSON], indirect=True)
def test_the_serializer_option_is_used(alias: str) -> None:
    import redis

    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=12)
    raw = redis.Redis.from_url(settings.REDIS_URL).get(
        caches[alias].make_key(store.task_key(session.session_id, "a"))
    )
    assert raw is not None and json.loads(raw)["percent"] == 12
    assert caches[alias].get(store.task_key(session.session_id, "a"))["percent"] == 12


POOLED = redis_cache(
    OPTIONS={
        "max_connections": 7,
        "socket_timeout": 2.5,
        "pool_class": "redis.BlockingConnectionPool",
        "parser_class": "redis.connection._RESP2Parser",
    }
)


@pytest.mark.parametrize("alias", [POOLED], indirect=True)
def test_pool_options_reach_every_client(alias: str) -> None:
    import redis
    import redis.asyncio

    backend = store.backend()
    assert isinstance(backend, RedisBackend)
    sync_pool = backend.clients.sync().connection_pool
    assert isinstance(sync_pool, redis.BlockingConnectionPool)
    assert sync_pool.max_connections == 7
    assert sync_pool.connection_kwargs["socket_timeout"] == 2.5
    assert sync_pool.connection_kwargs["parser_class"] is redis.connection._RESP2Parser

    async def pools() -> list[Any]:
        client = backend.clients.for_loop()
        pubsub = backend.clients.for_pubsub()
        try:
            return [client.connection_pool, pubsub.connection_pool]
        finally:
            await pubsub.aclose()

    reads, pubsub = asyncio.run(pools())
    for pool in (reads, pubsub):
        assert isinstance(pool, redis.asyncio.BlockingConnectionPool)
        assert pool.max_connections == 7
    assert reads.connection_kwargs["socket_timeout"] == 2.5
    # A subscriber waits for messages as long as it likes (the feed pings).
    assert pubsub.connection_kwargs["socket_timeout"] is None


BROKEN = redis_cache(OPTIONS={"serializer": "tests.integration.test_store.BrokenSerializer"})


@pytest.mark.parametrize("alias", [BROKEN], indirect=True)
def test_a_bug_is_not_an_outage(alias: str) -> None:
    """Regression: every exception of a cache call became CacheUnavailable, so an
    AttributeError (a bug, or a renamed attribute of a dependency) looked like
    Redis being down."""
    session = ProgressSession.create({"a": "A"})
    with pytest.raises(AttributeError, match="a bug in a serializer"):
        store.read_all(session.session_id, ["a"])


@pytest.fixture
def password_redis() -> Iterator[dict[str, Any]]:
    """A private Redis server that wants a password, given only in OPTIONS."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--requirepass", "s3cret"]
    server = start_process(argv, ready="Ready to accept connections")
    conf = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"password": "s3cret", "socket_connect_timeout": 1},
    }
    try:
        with override_settings(
            CACHES={**settings.CACHES, "locked": conf}, PROGRESS_UI={"CACHE_ALIAS": "locked"}
        ):
            yield conf
    finally:
        stop_process(server)


def test_writes_reads_push_and_listing_use_the_options(password_redis: dict[str, Any]) -> None:
    """Regression: the change feed connected with the bare URL, without the
    cache's OPTIONS (here, the password), and never heard of a change."""
    session = ProgressSession.create({"a": "A"})
    session.update("a", percent=5)
    assert session.to_dict()["tasks"]["a"]["percent"] == 5
    assert [s.session_id for s in listing.list_sessions()] == [session.session_id]
    url, channel = store.push_server(), store.change_channel(session.session_id)
    assert url is not None and channel is not None

    async def hear_a_change() -> int:
        feed = ChangeFeed(url)
        woken = asyncio.Event()
        try:
            assert await feed.watch(channel, woken.set, timeout=5), "not subscribed"
            woken.clear()
            await asyncio.to_thread(session.update, "a", percent=6)
            await asyncio.wait_for(woken.wait(), 5)
            return feed.losses
        finally:
            feed.unwatch(channel, woken.set)

    assert asyncio.run(hear_a_change()) == 0


def test_async_reads_of_one_loop_share_their_round_trips(
    alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = [ProgressSession.create({"a": "A", "b": "B"}) for _ in range(30)]
    for i, session in enumerate(sessions):
        session.update("a", current=i, total=100)
    backend = store.backend()
    assert isinstance(backend, RedisBackend)

    async def read_all() -> tuple[list[Any], int]:
        client = backend.clients.for_loop()
        mgets = 0
        mget = client.mget

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal mgets
            mgets += 1
            return await mget(*args, **kwargs)

        monkeypatch.setattr(client, "mget", counted)
        states = await asyncio.gather(
            *(store.aread_all(s.session_id, list(s.tasks)) for s in sessions)
        )
        return list(states), mgets

    states, mgets = asyncio.run(read_all())
    # 30 reads at once: the first goes alone, the rest together.
    assert mgets <= 2, mgets
    for i, (meta, records) in enumerate(states):
        assert meta is not None and records["a"]["current"] == i
        assert records["b"]["status"] == "pending"
