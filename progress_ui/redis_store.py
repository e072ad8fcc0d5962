"""What ``progress_ui.store`` does differently on Django's Redis cache.

Django's cache API costs a round trip per call and cannot compare-and-set, so on
``django.core.cache.backends.redis.RedisCache`` (with its own client class) the
store talks to redis-py directly, with the cache's own keys and serializer:

- a progress write is one round trip: a Lua script stores the task only if its
  key still holds what the writer based its change on (else it hands back what
  is there, and the writer redoes its change on that), renews the session's
  description and publishes the change;
- an ending (complete, error, cancel) is one pipelined round trip too;
- every change is published on the session's channel (:func:`channel`), so
  viewers are woken at once instead of at their next poll (``progress_ui.push``).

Every other cache goes through Django's API, and its viewers poll.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache

try:  # redis-py is only needed with the Redis cache
    from django.core.cache.backends.redis import RedisCache, RedisCacheClient
except ImportError:  # pragma: no cover - Django always ships the module
    RedisCache = RedisCacheClient = None  # type: ignore[assignment,misc]

#: What a compare-and-set write found (``WriteResult.outcome``).
STORED, CHANGED_MEANWHILE, ENDED = 1, 0, 2

# KEYS: task, end, meta. ARGV: expected task value ("" for none), new task value,
# meta value, ttl, channel. Ended tasks are left alone (readers prefer the end key).
_COMPARE_AND_SET = """
local ended = redis.call('GET', KEYS[2])
if ended then return {2, ended} end
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return {0, current} end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4])
redis.call('PUBLISH', ARGV[5], '1')
return {1}
"""


@dataclass(frozen=True)
class WriteResult:
    outcome: int
    #: The stored value (serialized) after a CHANGED_MEANWHILE or ENDED outcome.
    found: bytes = b""


class RedisStore:
    """redis-py access to one Django ``RedisCache``, keyed and serialized as it is."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache
        self._client_wrapper: Any = cache._cache
        self._script: Any = None
        self._sync_client: Any = None
        #: redis.asyncio clients by event loop (their connections belong to one).
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def key(self, key: str) -> str:
        return str(self._cache.make_and_validate_key(key))

    def dumps(self, value: object) -> bytes:
        data = self._client_wrapper._serializer.dumps(value)
        return data if isinstance(data, bytes) else str(data).encode()

    def loads(self, data: bytes) -> Any:
        return self._client_wrapper._serializer.loads(data)

    def _client(self) -> Any:
        # Django makes a new redis.Redis per call (over its pooled connections),
        # which costs more than the round trip: one is enough (it is thread-safe).
        if self._sync_client is None:
            self._sync_client = self._client_wrapper.get_client(write=True)
        return self._sync_client

    @property
    def url(self) -> str:
        """Where writes (and so publications) go: the first server."""
        return str(self._client_wrapper._servers[0])

    def ttl(self, timeout: int) -> int:
        return int(self._cache.get_backend_timeout(timeout))

    def get_raw(self, keys: list[str]) -> list[bytes | None]:
        """The serialized values of ``keys`` (already made with :meth:`key`)."""
        return list(self._client().mget(keys))

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """``cache.get_many(keys)`` (keys not yet made) over this object's client."""
        values = self.get_raw([self.key(k) for k in keys])
        return {k: self.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def aget_many(self, keys: list[str]) -> dict[str, Any]:
        """``cache.get_many(keys)`` (keys not yet made), natively async: Django's
        ``aget_many`` runs the sync call in a thread, one hop per read, and every
        stream's reads queue for asgiref's one thread-sensitive thread."""
        made = [self.key(k) for k in keys]
        values = await self._async_client().mget(made)
        return {k: self.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def _async_client(self) -> Any:
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            options = dict(self._client_wrapper._pool_options)
            options.pop("parser_class", None)  # the sync parser class does not fit
            client = redis.asyncio.Redis.from_url(self.url, **options)
            self._async_clients[loop] = client
        return client

    def compare_and_set(
        self,
        *,
        task: str,
        end: str,
        meta: str,
        expected: bytes,
        value: bytes,
        meta_value: bytes,
        ttl: int,
        channel: str,
    ) -> WriteResult:
        client = self._client()
        if self._script is None:
            self._script = client.register_script(_COMPARE_AND_SET)
        reply = self._script(
            keys=[task, end, meta], args=[expected, value, meta_value, ttl, channel], client=client
        )
        outcome = int(reply[0])
        return WriteResult(outcome, bytes(reply[1]) if len(reply) > 1 else b"")

    def end(
        self, *, end: str, meta: str, value: bytes, meta_value: bytes, ttl: int, channel: str
    ) -> bool:
        """Store an ending unless the task has one (first one wins), renew the
        description and publish: one round trip. True if this ending was stored."""
        pipe = self._client().pipeline(transaction=False)
        pipe.set(meta, meta_value, ex=ttl)
        pipe.set(end, value, ex=ttl, nx=True)
        pipe.publish(channel, "1")
        return bool(pipe.execute()[1])

    def publish(self, channel: str) -> None:
        self._client().publish(channel, "1")


_stores: weakref.WeakKeyDictionary[BaseCache, RedisStore] = weakref.WeakKeyDictionary()


def redis_store(cache: BaseCache) -> RedisStore | None:
    """A :class:`RedisStore` for ``cache`` if it is Django's own Redis cache, else
    None (a custom client class may shard keys: it keeps the generic path)."""
    if RedisCache is None or not isinstance(cache, RedisCache):
        return None
    if getattr(cache, "_class", None) is not RedisCacheClient:
        return None
    found = _stores.get(cache)
    if found is None:
        found = _stores[cache] = RedisStore(cache)
    return found
