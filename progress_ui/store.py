"""Cache keys and cache I/O for sessions. The only module that talks to the cache.

Layout: one key for the session's (immutable) description, one key per task for
its progress, and one per task for how it ended, so writers of different tasks
never overwrite each other. A snapshot is read with a single ``get_many`` round
trip.

The end key is written with ``add`` (set only if absent: atomic on Redis,
LocMem and the database cache): the first of ``complete``, ``error`` and
``cancel`` wins, and a progress write that lands later (it read the task before
it ended) changes nothing readers see, since they prefer the end key.

Whatever a cache backend raises (redis-py's ``ConnectionError``, a database
error, an ``OSError`` of the file cache...) leaves this module as
:class:`CacheUnavailable`, so callers handle one exception for "the cache
cannot be reached right now".
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, NotRequired, TypedDict, TypeVar, cast

from django.core.cache import BaseCache, caches

from .conf import settings
from .records import TaskRecord
from .redis_store import ENDED, STORED, RedisStore, redis_store

V = TypeVar("V")


class CacheUnavailable(Exception):
    """The progress cache could not be read or written (the cause is chained)."""


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except CacheUnavailable:
        raise
    except Exception as exc:
        raise CacheUnavailable(f"progress_ui: the cache failed ({type(exc).__name__})") from exc


def _call(fn: Callable[[], V]) -> V:
    with _translated():
        return fn()


async def _acall(fn: Callable[[], Awaitable[V]]) -> V:
    with _translated():
        return await fn()


#: Bump when the stored shape changes incompatibly.
FORMAT = 1


class SessionMeta(TypedDict):
    format: int
    #: ``[task_id, name]`` pairs in display order.
    tasks: list[list[str]]
    #: Who may read the session (see ``progress_ui.ownership``), or None for anyone.
    owner: str | None
    #: Task id -> weight in the overall percent; absent means equal weights.
    weights: NotRequired[dict[str, float]]
    #: For a child session: the parent session (``ProgressSession.to_reference()``)
    #: and the parent's task that this session's progress rolls up into.
    parent: NotRequired[dict[str, Any]]
    parent_task: NotRequired[str]


_REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
#: Alias -> (the ``caches.settings`` it was made from, the cache object).
_shared: dict[str, tuple[object, BaseCache]] = {}


def cache() -> BaseCache:
    """The progress cache. Django makes a cache object per thread or async
    context, and its Redis cache a connection pool per object: every ASGI request
    (a stream, for as long as it is open) would hold a Redis connection of its
    own. Redis cache objects are safe to share, so this process shares one."""
    alias = settings.CACHE_ALIAS
    conf = caches.settings.get(alias)
    if conf is None or conf.get("BACKEND") != _REDIS_BACKEND:
        return caches[alias]
    found = _shared.get(alias)
    if found is None or found[0] is not caches.settings:  # CACHES changed (tests)
        found = _shared[alias] = (caches.settings, caches.create_connection(alias))
    return found[1]


def _redis() -> RedisStore | None:
    return redis_store(cache())


def change_channel(session_id: str) -> str | None:
    """The pub/sub channel on which changes of the session are published, or
    None when the cache cannot publish (only Django's Redis cache can)."""
    rs = _redis()
    return None if rs is None else rs.key(meta_key(session_id))


def push_server() -> str | None:
    """The URL of the Redis server that publishes changes, if the cache can."""
    rs = _redis()
    return None if rs is None else rs.url


def meta_key(session_id: str) -> str:
    return f"{settings.KEY_PREFIX}:{session_id}"


def task_key(session_id: str, task_id: str) -> str:
    return f"{settings.KEY_PREFIX}:{session_id}:t:{task_id}"


def end_key(session_id: str, task_id: str) -> str:
    return f"{settings.KEY_PREFIX}:{session_id}:e:{task_id}"


def all_keys(session_id: str, task_ids: list[str]) -> list[str]:
    return [
        meta_key(session_id),
        *(task_key(session_id, t) for t in task_ids),
        *(end_key(session_id, t) for t in task_ids),
    ]


def _effective(session_id: str, task_id: str, found: dict[str, Any]) -> TaskRecord | None:
    # How a task ended outranks its progress record.
    value = found.get(end_key(session_id, task_id), found.get(task_key(session_id, task_id)))
    return cast("TaskRecord | None", value)


def create(session_id: str, meta: SessionMeta, records: dict[str, TaskRecord], ttl: int) -> None:
    data: dict[str, Any] = {meta_key(session_id): meta}
    data.update({task_key(session_id, t): r for t, r in records.items()})
    failed = _call(lambda: cache().set_many(data, timeout=ttl))
    if failed:
        raise CacheUnavailable(f"progress_ui: the cache refused keys {failed!r}")


def load_meta(session_id: str) -> SessionMeta | None:
    return _as_meta(_get_many([meta_key(session_id)]).get(meta_key(session_id)))


def _get_many(keys: list[str]) -> dict[str, Any]:
    rs = _redis()
    if rs is not None:
        return _call(lambda: rs.get_many(keys))
    return _call(lambda: cache().get_many(keys))


async def _aget_many(keys: list[str]) -> dict[str, Any]:
    rs = _redis()
    if rs is not None:
        return await _acall(lambda: rs.aget_many(keys))
    return await _acall(lambda: cache().aget_many(keys))


async def aload_meta(session_id: str) -> SessionMeta | None:
    found = await _aget_many([meta_key(session_id)])
    return _as_meta(found.get(meta_key(session_id)))


def _as_meta(value: Any) -> SessionMeta | None:
    if isinstance(value, dict) and value.get("format") == FORMAT:
        return cast(SessionMeta, value)
    return None


def _split(
    session_id: str, task_ids: list[str], found: dict[str, Any]
) -> tuple[SessionMeta | None, dict[str, TaskRecord]]:
    meta = _as_meta(found.get(meta_key(session_id)))
    records = {t: r for t in task_ids if (r := _effective(session_id, t, found)) is not None}
    return meta, records


def read_all(
    session_id: str, task_ids: list[str]
) -> tuple[SessionMeta | None, dict[str, TaskRecord]]:
    """The session description and every task record, in one round trip."""
    found = _get_many(all_keys(session_id, task_ids))
    return _split(session_id, task_ids, found)


async def aread_all(
    session_id: str, task_ids: list[str]
) -> tuple[SessionMeta | None, dict[str, TaskRecord]]:
    found = await _aget_many(all_keys(session_id, task_ids))
    return _split(session_id, task_ids, found)


def read_task(session_id: str, task_id: str) -> TaskRecord | None:
    """The task's record as readers see it: how it ended, else its progress."""
    keys = [task_key(session_id, task_id), end_key(session_id, task_id)]
    found = _get_many(keys)
    return _effective(session_id, task_id, found)


def write_task(
    session_id: str, meta: SessionMeta, task_id: str, record: TaskRecord, ttl: int
) -> None:
    """Store one task and renew the session description with it (one round trip
    on Redis). Rewriting the description is safe: it never changes after create."""
    data = {meta_key(session_id): meta, task_key(session_id, task_id): record}
    failed = _call(lambda: cache().set_many(data, ttl))
    if failed:
        raise CacheUnavailable(f"progress_ui: the cache refused keys {failed!r}")
    _publish(session_id)


def end_task(
    session_id: str, meta: SessionMeta, task_id: str, record: TaskRecord, ttl: int
) -> bool:
    """Store how the task ended, unless it already has an end (first one wins);
    True if this one was stored. Renews the session description too."""
    rs = _redis()
    if rs is not None:
        return _call(
            lambda: rs.end(
                end=rs.key(end_key(session_id, task_id)),
                meta=rs.key(meta_key(session_id)),
                value=rs.dumps(record),
                meta_value=_meta_bytes(rs, meta),
                ttl=rs.ttl(ttl),
                channel=rs.key(meta_key(session_id)),
            )
        )
    _call(lambda: cache().set(meta_key(session_id), meta, ttl))
    return bool(_call(lambda: cache().add(end_key(session_id, task_id), record, ttl)))


def _publish(session_id: str) -> None:
    rs = _redis()
    if rs is not None:
        _call(lambda: rs.publish(rs.key(meta_key(session_id))))


# -- compare-and-set writes (Redis) --------------------------------------------------


class TaskVersion(NamedTuple):
    """A task as a writer read (or wrote) it, and the token to write over it."""

    #: What readers see: how the task ended if it did, else its progress record.
    record: TaskRecord | None
    #: The serialized progress record (b"" for none): a write based on this
    #: version lands only if the key still holds exactly this.
    raw: bytes
    ended: bool


def can_compare_and_set() -> bool:
    """True when :func:`write_task_if` is available (Django's Redis cache)."""
    return _redis() is not None


def _need_redis() -> RedisStore:
    rs = _redis()
    if rs is None:
        raise RuntimeError("compare-and-set writes need Django's Redis cache")
    return rs


def read_task_version(session_id: str, task_id: str) -> TaskVersion:
    """The task and its write token, in one round trip (Redis only)."""
    rs = _need_redis()
    keys = [rs.key(task_key(session_id, task_id)), rs.key(end_key(session_id, task_id))]
    raw, ended = _call(lambda: rs.get_raw(keys))
    if ended is not None:
        return TaskVersion(_call(lambda: rs.loads(ended)), raw or b"", True)
    return TaskVersion(_call(lambda: rs.loads(raw)) if raw else None, raw or b"", False)


def write_task_if(
    session_id: str,
    meta: SessionMeta,
    task_id: str,
    record: TaskRecord,
    ttl: int,
    based_on: TaskVersion,
) -> tuple[bool, TaskVersion]:
    """Store ``record`` only if the task has not changed since ``based_on`` and has
    not ended; renew the description and publish the change. One round trip.
    Returns whether it was stored, and the task's version now (to redo the change
    on when it was not)."""
    rs = _need_redis()
    value = rs.dumps(record)
    result = _call(
        lambda: rs.compare_and_set(
            task=rs.key(task_key(session_id, task_id)),
            end=rs.key(end_key(session_id, task_id)),
            meta=rs.key(meta_key(session_id)),
            expected=based_on.raw,
            value=value,
            meta_value=_meta_bytes(rs, meta),
            ttl=rs.ttl(ttl),
            channel=rs.key(meta_key(session_id)),
        )
    )
    if result.outcome == STORED:
        return True, TaskVersion(record, value, False)
    found = _call(lambda: rs.loads(result.found)) if result.found else None
    if result.outcome == ENDED:
        return False, TaskVersion(found, based_on.raw, True)
    return False, TaskVersion(found, result.found, False)


#: The description never changes after create: serialize it once per session
#: (keyed by the dict's id, which the entry keeps alive).
_meta_cache: dict[int, tuple[SessionMeta, bytes]] = {}


def _meta_bytes(rs: RedisStore, meta: SessionMeta) -> bytes:
    entry = _meta_cache.get(id(meta))
    if entry is not None and entry[0] is meta:
        return entry[1]
    if len(_meta_cache) >= 1024:
        _meta_cache.clear()
    data = rs.dumps(meta)
    _meta_cache[id(meta)] = (meta, data)
    return data


def renew_finished(
    session_id: str, meta: SessionMeta, finished: dict[str, TaskRecord], ttl: int
) -> None:
    """Store the description and the ended tasks' end records again with a new
    lifetime (once the session has settled). Only ended tasks are passed, and only
    their end keys are written: rewriting a pending one could undo a concurrent
    start."""
    data: dict[str, Any] = {meta_key(session_id): meta}
    data.update({end_key(session_id, t): r for t, r in finished.items()})
    failed = _call(lambda: cache().set_many(data, timeout=ttl))
    if failed:
        raise CacheUnavailable(f"progress_ui: the cache refused keys {failed!r}")


def delete(session_id: str, task_ids: list[str]) -> None:
    _call(lambda: cache().delete_many(all_keys(session_id, task_ids)))
    _publish(session_id)  # its viewers learn at once that it is gone


# -- liveness of the processes running tasks ---------------------------------------


def alive_key(token: str) -> str:
    return f"{settings.KEY_PREFIX}:alive:{token}"


def mark_alive(token: str, ttl: float) -> None:
    """Say that the process ``token`` lives, for the next ``ttl`` seconds."""
    _call(lambda: cache().set(alive_key(token), 1, timeout=math.ceil(ttl)))


def alive(tokens: list[str]) -> set[str]:
    """Those of ``tokens`` whose process said it lives recently (one round trip)."""
    found = _get_many([alive_key(t) for t in tokens])
    return {t for t in tokens if alive_key(t) in found}


async def aalive(tokens: list[str]) -> set[str]:
    found = await _aget_many([alive_key(t) for t in tokens])
    return {t for t in tokens if alive_key(t) in found}


def touch_session(session_id: str, task_ids: list[str], ttl: int) -> None:
    """Renew the lifetime of a session's keys without rewriting them (a task that
    runs long without reporting keeps its session readable)."""
    for key in all_keys(session_id, task_ids):
        _call(lambda key=key: cache().touch(key, ttl))  # type: ignore[misc]


# -- runners' references to queued work ------------------------------------------------


def job_key(session_id: str, task_id: str) -> str:
    return f"{settings.KEY_PREFIX}:{session_id}:job:{task_id}"


def remember_job(session_id: str, task_id: str, reference: str, ttl: int) -> None:
    """Keep a task runner's id of the message that will run ``task_id`` (so that a
    cancel can revoke it)."""
    _call(lambda: cache().set(job_key(session_id, task_id), reference, ttl))


def job_reference(session_id: str, task_id: str) -> str | None:
    value = _call(lambda: cache().get(job_key(session_id, task_id)))
    return value if isinstance(value, str) else None
