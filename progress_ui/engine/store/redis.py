"""The store backend for Django's Redis cache (``django.core.cache.backends.redis.RedisCache``).

Django's cache API costs a round trip per call and cannot compare-and-set, so
this backend talks to Redis with redis-py clients of its own, built by
:class:`RedisClients` from the cache's public configuration (``LOCATION`` and
``OPTIONS`` in ``settings.CACHES``), with the cache's own keys (its public
``make_and_validate_key``) and values in Django's format (its serializer), so
``caches[alias].get()`` reads what this backend writes, and the reverse:

- a progress write is one round trip: a Lua script stores the task only if its
  key still holds what the writer based its change on (else it hands back what
  is there, and the writer redoes its change on that), renews the session's
  description and publishes the change;
- an ending (complete, error, cancel) is a read and one pipelined write;
- every change is published on the session's channel (:meth:`RedisBackend.channel`),
  so viewers are woken at once instead of at their next poll
  (``progress_ui.streaming.push``, whose connection comes from the same factory).

Reads and writes all go to the first server of ``LOCATION`` (Django writes
there too, and reads from the others when there are several): a viewer never
reads an older state than the one its writer stored. The store's clock
(``progress_ui.engine.store.clock``) is that server's ``TIME``; lifetimes are
the server's own (``EX``), whatever the writer's clock.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisSerializer
from django.utils.module_loading import import_string

from progress_ui.core.records import TaskRecord
from progress_ui.engine.plans import Op, Plan
from progress_ui.engine.store.base import (
    Change,
    SessionMeta,
    Written,
    apply_change,
    end_key,
    meta_key,
    task_key,
    translated,
)
from progress_ui.engine.store.batch import MGetBatch
from progress_ui.engine.store.clock import StoreClock

#: Compare-and-set attempts of one write before the last writer simply wins.
WRITE_ATTEMPTS = 5

#: What a compare-and-set write found.
_STORED, _CHANGED_MEANWHILE, _ENDED = 1, 0, 2

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


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """redis-py's errors for "the server cannot be reached or cannot take writes
    now": a refused, dropped or timed-out connection (including a server still
    loading its data), or a read-only replica during a failover."""
    import redis.exceptions

    return (
        redis.exceptions.ConnectionError,  # BusyLoadingError is one
        redis.exceptions.TimeoutError,
        redis.exceptions.ReadOnlyError,
        OSError,
    )


class RedisClients:
    """The one factory of redis-py clients for a ``RedisCache`` configuration,
    used for writes, reads and pub/sub.

    ``OPTIONS`` mean what they mean to Django's ``RedisCache``: ``serializer``
    (a class, an instance or a dotted path; Django's pickle serializer by
    default), ``pool_class`` and ``parser_class`` (classes or dotted paths), and
    every other key is passed to the connection pool (``max_connections``,
    ``socket_timeout``, ``db``, ``password``...)."""

    def __init__(self, location: str | list[str], options: dict[str, Any]) -> None:
        import redis

        self.servers = re.split("[;,]", location) if isinstance(location, str) else list(location)
        options = dict(options)
        serializer = options.pop("serializer", None)
        if isinstance(serializer, str):
            serializer = import_string(serializer)
        if callable(serializer):
            serializer = serializer()
        self.serializer: Any = serializer or RedisSerializer()
        pool_class = options.pop("pool_class", None)
        if isinstance(pool_class, str):
            pool_class = import_string(pool_class)
        self.pool_class: type[Any] = pool_class or redis.ConnectionPool
        parser_class = options.pop("parser_class", None)
        if isinstance(parser_class, str):
            parser_class = import_string(parser_class)
        self.parser_class: type[Any] = parser_class or redis.connection.DefaultParser
        #: Connection pool keyword arguments shared by the sync and async clients.
        self.pool_kwargs = options
        self._sync: Any = None
        #: redis.asyncio clients by event loop (their connections belong to one).
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def url(self) -> str:
        """The server that takes writes (and so publishes changes): the first."""
        return self.servers[0]

    def sync(self) -> Any:
        """The process's sync client (thread-safe, over one connection pool)."""
        if self._sync is None:
            import redis

            pool = self.pool_class.from_url(
                self.url, parser_class=self.parser_class, **self.pool_kwargs
            )
            self._sync = redis.Redis(connection_pool=pool)
        return self._sync

    def for_loop(self) -> Any:
        """The async client of the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            # A client holds its loop alive (its connections refer to it), so
            # the weak keys alone would keep the clients of every loop that a
            # worker ran a job in: forget those of closed loops.
            for done in [old for old in self._async if old.is_closed()]:
                del self._async[done]
            client = self._async[loop] = self._new_async(**self.pool_kwargs)
        return client

    async def aclose_for_loop(self) -> None:
        """Close the running loop's client (the loop is about to end)."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def for_pubsub(self) -> Any:
        """A new async client for a pub/sub connection, which the caller closes.
        No ``socket_timeout``: a subscriber waits for messages as long as it
        likes (``progress_ui.streaming.push`` pings to notice a silent server)."""
        return self._new_async(**{**self.pool_kwargs, "socket_timeout": None})

    def _new_async(self, **kwargs: Any) -> Any:
        # The sync parser class does not fit an asyncio connection: the async
        # pool picks its own (hiredis when installed, as the sync default does).
        import redis
        import redis.asyncio

        blocking = issubclass(self.pool_class, redis.BlockingConnectionPool)
        pool_class = (
            redis.asyncio.BlockingConnectionPool if blocking else redis.asyncio.ConnectionPool
        )
        return redis.asyncio.Redis(connection_pool=pool_class.from_url(self.url, **kwargs))

    def dumps(self, value: object) -> bytes:
        data = self.serializer.dumps(value)
        return data if isinstance(data, bytes) else str(data).encode()

    def loads(self, data: bytes) -> Any:
        return self.serializer.loads(data)


@dataclass(frozen=True)
class _Version:
    """A task as a writer read (or wrote) it, and the token to write over it."""

    #: What readers see: how the task ended if it did, else its progress record.
    record: TaskRecord | None
    #: The serialized progress record (b"" for none): a write based on this
    #: version lands only if the key still holds exactly this.
    raw: bytes
    ended: bool


class RedisBackend:
    """:class:`~progress_ui.engine.store.base.StoreBackend` over redis-py."""

    def __init__(self, alias: str, conf: dict[str, Any]) -> None:
        self.alias = alias
        #: A cache object of the alias's own, for its public key making only.
        self.cache: BaseCache = caches.create_connection(alias)
        self.clients = RedisClients(conf.get("LOCATION", ""), conf.get("OPTIONS") or {})
        self.errors = unavailable_errors()
        self.clock = StoreClock()
        self._script: Any = None
        self._ascript: Any = None
        #: The description never changes after create: serialize it once per
        #: session (keyed by the dict's id, which the entry keeps alive).
        self._meta_bytes: dict[int, tuple[SessionMeta, bytes]] = {}
        #: The cache's keys, made once (a stream reads the same keys ten times a
        #: second, and Django validates every key it makes).
        self._keys: dict[str, str] = {}
        #: The merged MGETs of each event loop.
        self._batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MGetBatch] = (
            weakref.WeakKeyDictionary()
        )

    def _key(self, key: str) -> str:
        made = self._keys.get(key)
        if made is None:
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            made = self._keys[key] = str(self.cache.make_and_validate_key(key))
        return made

    def _meta(self, meta: SessionMeta) -> bytes:
        entry = self._meta_bytes.get(id(meta))
        if entry is not None and entry[0] is meta:
            return entry[1]
        if len(self._meta_bytes) >= 1024:
            self._meta_bytes.clear()
        data = self.clients.dumps(meta)
        self._meta_bytes[id(meta)] = (meta, data)
        return data

    # -- reads ------------------------------------------------------------------

    def _command(self, command: Callable[[Any], Any]) -> Op[Any]:
        """The step ``command(client)``: run on the sync client, or awaited on the
        running loop's asyncio client (redis-py's two clients take the same calls,
        pipelines and scripts included)."""

        def call() -> Any:
            with translated(self.errors):
                return command(self.clients.sync())

        async def acall() -> Any:
            with translated(self.errors):
                return await command(self.clients.for_loop())

        return Op(call, acall)

    def clock_reading(self) -> Op[float]:
        """The server's ``TIME`` (seconds and microseconds)."""
        op = self._command(lambda client: client.time())

        async def acall() -> float:
            return _epoch(await op.acall())

        return Op(lambda: _epoch(op.call()), acall)

    def _mget(self, keys: list[str]) -> Op[list[bytes | None]]:
        return self._mget_made([self._key(k) for k in keys])

    def _mget_made(self, made: list[str]) -> Op[list[bytes | None]]:
        return self._command(lambda client: client.mget(made))

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        return self._loaded(keys, self._mget(keys).call())

    async def aget_many(self, keys: list[str]) -> dict[str, Any]:
        """Natively async: Django's ``aget_many`` runs the sync call in a thread,
        one hop per read. The reads of one event loop are merged
        (:class:`MGetBatch`): with many sessions followed, a round trip of
        redis-py costs far more than the keys it carries."""
        loop = asyncio.get_running_loop()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = MGetBatch(lambda made: self._mget_made(made).acall())
        return self._loaded(keys, await batch.get([self._key(k) for k in keys]))

    def _loaded(self, keys: list[str], values: list[bytes | None]) -> dict[str, Any]:
        loads = self.clients.loads
        return {k: loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    # -- plain writes ----------------------------------------------------------------

    def _set(self, data: dict[str, Any], ttl: int) -> Op[Any]:
        # One transaction: a reader never sees a session half created.
        encoded = {self._key(k): self.clients.dumps(v) for k, v in data.items()}

        def command(client: Any) -> Any:
            pipe = client.pipeline(transaction=True)
            for key, value in encoded.items():
                pipe.set(key, value, ex=_seconds(ttl))
            return pipe.execute()

        return self._command(command)

    def set_many(self, data: dict[str, Any], ttl: int) -> None:
        self._set(data, ttl).call()

    async def aset_many(self, data: dict[str, Any], ttl: int) -> None:
        await self._set(data, ttl).acall()

    def _add(self, key: str, value: Any, ttl: int) -> Op[Any]:
        made, data = self._key(key), self.clients.dumps(value)
        return self._command(lambda client: client.set(made, data, ex=_seconds(ttl), nx=True))

    def add(self, key: str, value: Any, ttl: int) -> bool:
        return bool(self._add(key, value, ttl).call())

    async def aadd(self, key: str, value: Any, ttl: int) -> bool:
        return bool(await self._add(key, value, ttl).acall())

    def touch(self, keys: list[str], ttl: int) -> None:
        pipe = self.clients.sync().pipeline(transaction=False)
        for key in keys:
            pipe.expire(self._key(key), _seconds(ttl))
        with translated(self.errors):
            pipe.execute()

    def _delete(self, keys: list[str]) -> Op[Any]:
        made = [self._key(k) for k in keys]
        return self._command(lambda client: client.delete(*made))

    def delete_many(self, keys: list[str]) -> None:
        self._delete(keys).call()

    async def adelete_many(self, keys: list[str]) -> None:
        await self._delete(keys).acall()

    async def aclose_loop_clients(self) -> None:
        await self.clients.aclose_for_loop()

    # -- task writes -----------------------------------------------------------------

    def _read_version(self, session_id: str, task_id: str) -> Plan[_Version]:
        keys = [task_key(session_id, task_id), end_key(session_id, task_id)]
        raw, ended = yield self._mget(keys)
        if ended is not None:
            return _Version(self.clients.loads(ended), raw or b"", True)
        return _Version(self.clients.loads(raw) if raw else None, raw or b"", False)

    def update(
        self,
        session_id: str,
        meta: SessionMeta,
        task_id: str,
        change: Change,
        *,
        ttl: int,
        memo: dict[str, Any],
    ) -> Plan[Written]:
        """Based on the version this writer last read or wrote (kept in ``memo``:
        no read), stored only if nobody changed the task since; otherwise redone
        on what is there. One round trip per write, and concurrent writers never
        undo each other."""
        version = cast("_Version | None", memo.pop(task_id, None))
        if version is None:
            version = yield from self._read_version(session_id, task_id)
        record: TaskRecord | None = None
        for _ in range(WRITE_ATTEMPTS):
            record = apply_change(version.record, version.ended, change)
            if record is None:
                if not version.ended:
                    memo[task_id] = version
                return Written(False, version.record, version.ended)
            version = yield from self._compare_and_set(
                session_id, meta, task_id, record, ttl, version
            )
            if version.record is record:
                memo[task_id] = version
                return Written(True, record, False)
        # Contended beyond reason: the last writer wins, as on other caches.
        assert record is not None
        task, value = self._key(task_key(session_id, task_id)), self.clients.dumps(record)
        described, description = self._key(meta_key(session_id)), self._meta(meta)
        channel = self.channel(session_id)

        def overwrite(client: Any) -> Any:
            pipe = client.pipeline(transaction=False)
            pipe.set(task, value, ex=_seconds(ttl))
            pipe.set(described, description, ex=_seconds(ttl))
            pipe.publish(channel, "1")
            return pipe.execute()

        yield self._command(overwrite)
        return Written(True, record, False)

    def _script_for(self, client: Any) -> Any:
        """The compare-and-set script object for ``client``'s kind (redis-py has
        one for sync and one for asyncio clients; either runs on any client of
        its kind)."""
        import redis.asyncio

        if isinstance(client, redis.asyncio.Redis):
            if self._ascript is None:
                self._ascript = client.register_script(_COMPARE_AND_SET)
            return self._ascript
        if self._script is None:
            self._script = client.register_script(_COMPARE_AND_SET)
        return self._script

    def _compare_and_set(
        self,
        session_id: str,
        meta: SessionMeta,
        task_id: str,
        record: TaskRecord,
        ttl: int,
        based_on: _Version,
    ) -> Plan[_Version]:
        """The task's version after trying to store ``record`` over ``based_on``:
        ``record`` itself when it was stored."""
        value = self.clients.dumps(record)
        keys = [
            self._key(task_key(session_id, task_id)),
            self._key(end_key(session_id, task_id)),
            self._key(meta_key(session_id)),
        ]
        args = [based_on.raw, value, self._meta(meta), _seconds(ttl), self.channel(session_id)]
        reply = yield self._command(
            lambda client: self._script_for(client)(keys=keys, args=args, client=client)
        )
        outcome = int(reply[0])
        if outcome == _STORED:
            return _Version(record, value, False)
        found = bytes(reply[1]) if len(reply) > 1 else b""
        loaded = self.clients.loads(found) if found else None
        if outcome == _ENDED:
            return _Version(loaded, based_on.raw, True)
        return _Version(loaded, found, False)

    def end_task(
        self, session_id: str, meta: SessionMeta, task_id: str, change: Change, *, ttl: int
    ) -> Plan[Written]:
        """A read, then one pipelined round trip: the ending is set only if the
        task has none (first one wins), with the description and a publication."""
        found = yield from self._read_version(session_id, task_id)
        record = apply_change(found.record, found.ended, change)
        if record is None:
            return Written(False, found.record, found.ended)
        described, description = self._key(meta_key(session_id)), self._meta(meta)
        ending, value = self._key(end_key(session_id, task_id)), self.clients.dumps(record)
        channel = self.channel(session_id)

        def store_ending(client: Any) -> Any:
            pipe = client.pipeline(transaction=False)
            pipe.set(described, description, ex=_seconds(ttl))
            pipe.set(ending, value, ex=_seconds(ttl), nx=True)
            pipe.publish(channel, "1")
            return pipe.execute()

        replies = yield self._command(store_ending)
        stored = bool(replies[1])
        return Written(stored, record if stored else found.record, not stored)

    # -- push ------------------------------------------------------------------------

    def _publish(self, session_id: str) -> Op[Any]:
        channel = self.channel(session_id)
        return self._command(lambda client: client.publish(channel, "1"))

    def publish(self, session_id: str) -> None:
        self._publish(session_id).call()

    async def apublish(self, session_id: str) -> None:
        await self._publish(session_id).acall()

    def channel(self, session_id: str) -> str:
        return self._key(meta_key(session_id))

    @property
    def push_server(self) -> str:
        return self.clients.url


def _epoch(reply: Any) -> float:
    seconds, microseconds = reply
    return int(seconds) + int(microseconds) / 1e6


#: Keys made at most (then forgotten and made again).
_MAX_KEYS = 100_000


def _seconds(ttl: int) -> int:
    # What RedisCache.get_backend_timeout makes of a lifetime (at least 1 s here:
    # Redis refuses EX 0, where Django would delete the key).
    return max(1, int(ttl))
