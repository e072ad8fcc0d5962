"""The store backend for any Django cache (LocMem, database, file, memcached...),
through Django's public cache API only.

A task write reads the task and stores it back (get, modify, set): two writers of
the same task at the same moment may overwrite each other's progress, the last
one winning; endings still go through ``add``, so the first ending wins.
Changes are not pushed: viewers poll.

The store's clock (``progress_ui.engine.store.clock``) is the database's for the
database cache and the file system's for the file cache; other caches have none
but this process's. Django's file and database caches date an entry's expiry by
the writing process's clock (and check it by the reader's), so lifetimes given
here are corrected by this process's offset to the store's clock: a worker whose
clock runs behind would otherwise write liveness keys that have already expired.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from functools import cache as once
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.db import BaseDatabaseCache
from django.core.cache.backends.filebased import FileBasedCache
from django.db import DatabaseError, connections, router

from progress_ui.core.records import TaskRecord
from progress_ui.engine.plans import Op, Plan, io
from progress_ui.engine.store.base import (
    CacheUnavailable,
    Change,
    SessionMeta,
    Written,
    apply_change,
    effective,
    end_key,
    meta_key,
    task_key,
    translated,
)
from progress_ui.engine.store.clock import StoreClock

#: The current time (seconds since the epoch, with its fraction) by database
#: vendor. PostgreSQL's ``clock_timestamp()``, not ``now()``: the latter is the
#: start of the transaction, which may be long past. Other vendors: no clock.
_DATABASE_NOW = {
    "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
    "postgresql": "SELECT EXTRACT(EPOCH FROM clock_timestamp())",
    "mysql": "SELECT UNIX_TIMESTAMP(NOW(6))",
}
#: The file the file cache's clock is read from, in the cache's directory (the
#: file cache lists, culls and clears only its own ``*.djcache`` files).
CLOCK_FILE = ".progress_ui-clock"

#: Client libraries' own errors for a lost or refused connection, where they do
#: not raise ``OSError``: (module, names).
_CLIENT_ERRORS = (
    ("redis.exceptions", ("ConnectionError", "TimeoutError", "ReadOnlyError")),
    ("pymemcache.exceptions", ("MemcacheUnexpectedCloseError", "MemcacheServerError")),
    ("pylibmc", ("ConnectionError", "ServerDown", "ServerDead", "SocketCreateError")),
)


@once
def unavailable_errors() -> tuple[type[BaseException], ...]:
    """The errors of Django's cache backends that mean "cannot be reached now":
    ``OSError`` (sockets, the file cache), a database error (the database
    cache), and the connection errors of the client libraries installed."""
    found: list[type[BaseException]] = [OSError, DatabaseError]
    for module_name, names in _CLIENT_ERRORS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found += [e for name in names if isinstance(e := getattr(module, name, None), type)]
    return tuple(found)


class CacheBackend:
    """:class:`~progress_ui.engine.store.base.StoreBackend` over ``caches[alias]``."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.errors = unavailable_errors()
        self.clock = StoreClock()

    @property
    def cache(self) -> BaseCache:
        # Django's cache objects are per thread (and async context): ask each time.
        return caches[self.alias]

    def clock_reading(self) -> Op[float] | None:
        cache = self.cache
        read: Callable[[], float]
        if isinstance(cache, BaseDatabaseCache):
            # The database the cache reads from, as Django's DatabaseCache routes it.
            database = router.db_for_read(cache.cache_model_class)
            sql = _DATABASE_NOW.get(connections[database].vendor)
            if sql is None:
                return None
            read = partial(_database_time, database, sql)
        elif isinstance(cache, FileBasedCache):
            conf = django_settings.CACHES.get(self.alias)
            location = conf.get("LOCATION") if isinstance(conf, dict) else None
            if not isinstance(location, str):
                return None
            read = partial(_file_time, os.path.join(os.path.abspath(location), CLOCK_FILE))
        else:
            return None

        def call() -> float:
            with translated(self.errors):
                return read()

        # A thread of its own, as Django's cache runs its async calls: the
        # database cannot be queried where an event loop runs.
        return Op(call, sync_to_async(call, thread_sensitive=True))

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        with translated(self.errors):
            return self.cache.get_many(keys)

    async def aget_many(self, keys: list[str]) -> dict[str, Any]:
        with translated(self.errors):
            return await self.cache.aget_many(keys)

    def set_many(self, data: dict[str, Any], ttl: int) -> None:
        with translated(self.errors):
            failed = self.cache.set_many(data, timeout=self.clock.ttl(ttl))
        _check_stored(failed)

    async def aset_many(self, data: dict[str, Any], ttl: int) -> None:
        with translated(self.errors):
            failed = await self.cache.aset_many(data, timeout=self.clock.ttl(ttl))
        _check_stored(failed)

    def add(self, key: str, value: Any, ttl: int) -> bool:
        with translated(self.errors):
            return bool(self.cache.add(key, value, ttl))

    async def aadd(self, key: str, value: Any, ttl: int) -> bool:
        with translated(self.errors):
            return bool(await self.cache.aadd(key, value, ttl))

    def touch(self, keys: list[str], ttl: int) -> None:
        cache, timeout = self.cache, self.clock.ttl(ttl)
        with translated(self.errors):
            for key in keys:
                cache.touch(key, timeout)

    def delete_many(self, keys: list[str]) -> None:
        with translated(self.errors):
            self.cache.delete_many(keys)

    async def adelete_many(self, keys: list[str]) -> None:
        with translated(self.errors):
            await self.cache.adelete_many(keys)

    def _set_ending(
        self, described: str, meta: SessionMeta, key: str, record: TaskRecord, ttl: int
    ) -> bool:
        """Store the description, then the ending only if the task has none."""
        cache, timeout = self.cache, self.clock.ttl(ttl)
        with translated(self.errors):
            cache.set(described, meta, timeout)
            return bool(cache.add(key, record, timeout))

    async def _aset_ending(
        self, described: str, meta: SessionMeta, key: str, record: TaskRecord, ttl: int
    ) -> bool:
        cache, timeout = self.cache, self.clock.ttl(ttl)
        with translated(self.errors):
            await cache.aset(described, meta, timeout)
            return bool(await cache.aadd(key, record, timeout))

    def _read_task(self, session_id: str, task_id: str) -> Plan[tuple[TaskRecord | None, bool]]:
        keys = [task_key(session_id, task_id), end_key(session_id, task_id)]
        found = yield io(self.get_many, self.aget_many, keys)
        return effective(session_id, task_id, found), end_key(session_id, task_id) in found

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
        found, ended = yield from self._read_task(session_id, task_id)
        record = apply_change(found, ended, change)
        if record is None:
            return Written(False, found, ended)
        # Rewriting the description is safe: it never changes after create.
        data = {meta_key(session_id): meta, task_key(session_id, task_id): record}
        yield io(self.set_many, self.aset_many, data, ttl)
        return Written(True, record, False)

    def end_task(
        self, session_id: str, meta: SessionMeta, task_id: str, change: Change, *, ttl: int
    ) -> Plan[Written]:
        found, ended = yield from self._read_task(session_id, task_id)
        record = apply_change(found, ended, change)
        if record is None:
            return Written(False, found, ended)
        args = (meta_key(session_id), meta, end_key(session_id, task_id), record, ttl)
        stored = yield io(self._set_ending, self._aset_ending, *args)
        return Written(stored, record if stored else found, not stored)

    def publish(self, session_id: str) -> None:
        """Nothing: viewers of these caches poll."""

    async def apublish(self, session_id: str) -> None:
        """Nothing: viewers of these caches poll."""

    async def aclose_loop_clients(self) -> None:
        """Nothing: Django's cache objects manage their own connections."""

    def channel(self, session_id: str) -> None:
        return None

    @property
    def push_server(self) -> None:
        return None


def _database_time(database: str, sql: str) -> float:
    with connections[database].cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    return float(row[0])


def _file_time(path: str) -> float:
    """The time the file system gives ``path`` when it is touched: its own clock
    (a file server's over NFS, where a touch asks the server to set the time)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        # The cache's directory too may be gone (Django's file cache makes it
        # again on its next write, with this mode).
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        with open(path, "ab"):
            pass  # created now: its modification time is the file system's now
    return os.stat(path).st_mtime_ns / 1e9


def _check_stored(failed: list[str]) -> None:
    if failed:
        raise CacheUnavailable(f"progress_ui: the cache refused keys {failed!r}")
