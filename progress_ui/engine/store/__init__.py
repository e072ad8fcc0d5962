"""The progress store: sessions in the cache named by ``PROGRESS_UI['CACHE_ALIAS']``.

:func:`backend` gives the store backend of that alias, chosen once per alias
from its public configuration: :class:`~progress_ui.engine.store.redis.RedisBackend`
for Django's ``RedisCache`` (one-round-trip compare-and-set writes, pushed
changes), :class:`~progress_ui.engine.store.cache.CacheBackend` for any
other cache. The functions below are the engine's whole use of it; every one
raises :class:`CacheUnavailable` when the cache cannot be reached, except
:func:`now`.

Times stored in records, and compared with them, are the store's (:func:`now`,
``progress_ui.engine.store.clock``): the reads and writes below measure this
process's offset to the store's clock when it is due (once a minute), so
readers and writers agree whatever their machines' clocks say.

Every session created is entered in the session index
(:mod:`~progress_ui.engine.store.index`), so that sessions can be listed on any
cache.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings as django_settings
from django.core.cache import BaseCache

from progress_ui.conf import current as current_settings
from progress_ui.core.records import TaskRecord
from progress_ui.engine.plans import Plan, arun, run
from progress_ui.engine.store import index
from progress_ui.engine.store.base import (
    FORMAT,
    CacheUnavailable,
    Change,
    SessionMeta,
    StoreBackend,
    Written,
    all_keys,
    as_meta,
    effective,
    end_key,
    meta_key,
    task_key,
)
from progress_ui.engine.store.cache import CacheBackend
from progress_ui.engine.store.redis import RedisBackend, RedisClients

__all__ = [
    "FORMAT",
    "CacheUnavailable",
    "Change",
    "SessionMeta",
    "SessionState",
    "StoreBackend",
    "Written",
    "aalive",
    "acreate",
    "adelete",
    "alive",
    "alive_key",
    "all_keys",
    "aload_meta",
    "amark_alive",
    "aqueued_jobs",
    "aread_all",
    "aread_task",
    "aremember_queued",
    "arenew_finished",
    "backend",
    "cache",
    "change_channel",
    "create",
    "delete",
    "end_key",
    "end_task",
    "indexed",
    "job_key",
    "job_reference",
    "load_meta",
    "load_metas",
    "mark_alive",
    "meta_key",
    "now",
    "pubsub_client",
    "push_server",
    "queued_jobs",
    "queued_key",
    "read_all",
    "read_task",
    "remember_job",
    "remember_queued",
    "renew_finished",
    "sync_clock",
    "task_key",
    "touch_session",
    "update",
]

logger = logging.getLogger("progress_ui")

_REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
#: Alias -> (the ``CACHES`` entry it was made from, its backend).
_backends: dict[str, tuple[Any, StoreBackend]] = {}

#: What a read of a session found: its description (None if it is gone) and the
#: record of every task found.
SessionState = tuple[SessionMeta | None, dict[str, TaskRecord]]


def backend() -> StoreBackend:
    """The store backend of the progress cache (made again when ``CACHES`` changes)."""
    alias = current_settings().CACHE_ALIAS
    conf = django_settings.CACHES.get(alias)
    found = _backends.get(alias)
    if found is not None and (found[0] is conf or found[0] == conf):
        return found[1]
    made: StoreBackend
    if isinstance(conf, dict) and conf.get("BACKEND") == _REDIS_BACKEND:
        # Exactly Django's class: a subclass may route keys its own way.
        made = RedisBackend(alias, conf)
    else:
        made = CacheBackend(alias)
    _backends[alias] = (conf, made)
    return made


def cache() -> BaseCache:
    """A Django cache object of the progress cache (the Redis backend's own, which
    it uses to make keys; else ``caches[alias]`` of this thread)."""
    return backend().cache


# -- the store's clock -------------------------------------------------------------


def now() -> float:
    """The time on the store's clock (seconds since the epoch): the one every
    time stored in a record, or compared with one, is read from. No I/O, never
    raises: this process's clock until an offset is measured."""
    return backend().clock.now()


def sync_clock() -> Plan[None]:
    """The plan that measures this process's offset to the store's clock when it
    is due; a store that cannot be reached keeps the last offset (never raises)."""
    found = backend()
    yield from found.clock.sync(found.clock_reading)


def _ready() -> StoreBackend:
    """The backend, after measuring its clock if due (blocking I/O)."""
    run(sync_clock())
    return backend()


async def _aready() -> StoreBackend:
    """Async :func:`_ready`."""
    await arun(sync_clock())
    return backend()


# -- push -----------------------------------------------------------------------------


def change_channel(session_id: str) -> str | None:
    """The pub/sub channel on which changes of the session are published, or
    None when the cache cannot publish (only Django's Redis cache can)."""
    return backend().channel(session_id)


def push_server() -> str | None:
    """The URL of the Redis server that publishes changes, if the cache can."""
    return backend().push_server


def pubsub_client(url: str) -> Any:
    """A new redis.asyncio client for a pub/sub connection to ``url`` (the caller
    closes it), with the connection options of the cache it serves."""
    current = backend()
    candidates = [current, *(b for _, b in _backends.values())]
    for found in candidates:
        if isinstance(found, RedisBackend) and found.push_server == url:
            return found.clients.for_pubsub()
    return RedisClients(url, {}).for_pubsub()


# -- sessions ---------------------------------------------------------------------------


def _created(session_id: str, meta: SessionMeta, records: dict[str, TaskRecord]) -> dict[str, Any]:
    data: dict[str, Any] = {meta_key(session_id): meta}
    data.update({task_key(session_id, t): r for t, r in records.items()})
    return data


def create(session_id: str, meta: SessionMeta, records: dict[str, TaskRecord], ttl: int) -> None:
    """Store a new session, then enter it in the session index (unless it is a
    child session: it shows in its parent's task)."""
    found = _ready()
    found.set_many(_created(session_id, meta, records), ttl)
    if "parent" in meta:
        return
    try:
        run(index.record(found, session_id, now()))
    except CacheUnavailable as exc:
        _unindexed(session_id, exc)


async def acreate(
    session_id: str, meta: SessionMeta, records: dict[str, TaskRecord], ttl: int
) -> None:
    """Async :func:`create`."""
    found = await _aready()
    await found.aset_many(_created(session_id, meta, records), ttl)
    if "parent" in meta:
        return
    try:
        await arun(index.record(found, session_id, now()))
    except CacheUnavailable as exc:
        _unindexed(session_id, exc)


def _unindexed(session_id: str, exc: CacheUnavailable) -> None:
    # The session is stored and works; only listings will not show it.
    logger.warning("progress_ui: a new session was left out of the session index: %s", exc)


def indexed() -> list[index.Entry]:
    """The sessions of the session index, newest first (some may be gone)."""
    return index.entries(backend())


def load_metas(session_ids: list[str]) -> dict[str, SessionMeta]:
    """The descriptions of those of ``session_ids`` that are stored (a few round
    trips however many they are)."""
    found = index.read_many(backend(), [meta_key(s) for s in session_ids])
    metas = {s: as_meta(found.get(meta_key(s))) for s in session_ids}
    return {s: meta for s, meta in metas.items() if meta is not None}


def load_meta(session_id: str) -> SessionMeta | None:
    return as_meta(backend().get_many([meta_key(session_id)]).get(meta_key(session_id)))


async def aload_meta(session_id: str) -> SessionMeta | None:
    found = await backend().aget_many([meta_key(session_id)])
    return as_meta(found.get(meta_key(session_id)))


def _split(session_id: str, task_ids: list[str], found: dict[str, Any]) -> SessionState:
    meta = as_meta(found.get(meta_key(session_id)))
    records = {t: r for t in task_ids if (r := effective(session_id, t, found)) is not None}
    return meta, records


def read_all(session_id: str, task_ids: list[str]) -> SessionState:
    """The session description and every task record, in one round trip (and
    one more once a minute, to measure the store's clock: see :func:`now`)."""
    return _split(session_id, task_ids, _ready().get_many(all_keys(session_id, task_ids)))


async def aread_all(session_id: str, task_ids: list[str]) -> SessionState:
    """Async :func:`read_all`."""
    found = await (await _aready()).aget_many(all_keys(session_id, task_ids))
    return _split(session_id, task_ids, found)


def read_task(session_id: str, task_id: str) -> TaskRecord | None:
    """The task's record as readers see it: how it ended, else its progress."""
    found = backend().get_many([task_key(session_id, task_id), end_key(session_id, task_id)])
    return effective(session_id, task_id, found)


async def aread_task(session_id: str, task_id: str) -> TaskRecord | None:
    """Async :func:`read_task`."""
    keys = [task_key(session_id, task_id), end_key(session_id, task_id)]
    return effective(session_id, task_id, await backend().aget_many(keys))


def update(
    session_id: str,
    meta: SessionMeta,
    task_id: str,
    change: Change,
    *,
    ttl: int,
    memo: dict[str, Any],
) -> Plan[Written]:
    """``backend().update``: the plan that stores ``change`` of the task's progress
    (see :class:`~progress_ui.engine.store.base.StoreBackend`), the store's clock
    measured first when due (``change`` reads :func:`now`)."""
    yield from sync_clock()
    return (yield from backend().update(session_id, meta, task_id, change, ttl=ttl, memo=memo))


def end_task(
    session_id: str, meta: SessionMeta, task_id: str, change: Change, *, ttl: int
) -> Plan[Written]:
    """``backend().end_task``: the plan that stores how the task ended, unless it
    has ended already (the store's clock measured first when due)."""
    yield from sync_clock()
    return (yield from backend().end_task(session_id, meta, task_id, change, ttl=ttl))


def renew_finished(
    session_id: str, meta: SessionMeta, finished: dict[str, TaskRecord], ttl: int
) -> None:
    """Store the description and the ended tasks' end records again with a new
    lifetime (once the session has settled). Only ended tasks are passed, and only
    their end keys are written: rewriting a pending one could undo a concurrent
    start."""
    _ready().set_many(_renewed(session_id, meta, finished), ttl)


async def arenew_finished(
    session_id: str, meta: SessionMeta, finished: dict[str, TaskRecord], ttl: int
) -> None:
    """Async :func:`renew_finished`."""
    await (await _aready()).aset_many(_renewed(session_id, meta, finished), ttl)


def _renewed(session_id: str, meta: SessionMeta, finished: dict[str, TaskRecord]) -> dict[str, Any]:
    data: dict[str, Any] = {meta_key(session_id): meta}
    data.update({end_key(session_id, t): r for t, r in finished.items()})
    return data


def delete(session_id: str, task_ids: list[str]) -> None:
    found = backend()
    found.delete_many(all_keys(session_id, task_ids))
    found.publish(session_id)  # its viewers learn at once that it is gone


async def adelete(session_id: str, task_ids: list[str]) -> None:
    """Async :func:`delete`."""
    found = backend()
    await found.adelete_many(all_keys(session_id, task_ids))
    await found.apublish(session_id)


def touch_session(session_id: str, task_ids: list[str], ttl: int) -> None:
    """Renew the lifetime of a session's keys without rewriting them (a task that
    runs long without reporting keeps its session readable)."""
    _ready().touch(all_keys(session_id, task_ids), ttl)


# -- liveness of the processes running tasks ---------------------------------------


def alive_key(token: str) -> str:
    return f"{current_settings().KEY_PREFIX}:alive:{token}"


def _beat(lifetime: int) -> dict[str, float]:
    # When the beat was written, on the store's clock, and how long it holds:
    # readers judge it by that, not only by when the cache drops the key, which
    # Django's file and database caches date by the writer's clock (a writer
    # ahead of the store's clock would hold its claims for as long as it is ahead).
    return {"at": now(), "for": lifetime}


def mark_alive(token: str, ttl: float) -> None:
    """Say that the process ``token`` lives, for the next ``ttl`` seconds."""
    lifetime = math.ceil(ttl)
    _ready().set_many({alive_key(token): _beat(lifetime)}, lifetime)


async def amark_alive(token: str, ttl: float) -> None:
    """Async :func:`mark_alive`."""
    lifetime = math.ceil(ttl)
    await (await _aready()).aset_many({alive_key(token): _beat(lifetime)}, lifetime)


def _holds(beat: Any, at: float) -> bool:
    """True when a stored beat still says its process lives at ``at``. Another
    value (the ``1`` of earlier versions) holds while its key is there."""
    if not isinstance(beat, dict):
        return beat is not None
    written, lifetime = beat.get("at"), beat.get("for")
    if isinstance(written, (int, float)) and isinstance(lifetime, (int, float)):
        return at - written <= lifetime
    return True


def _living(tokens: list[str], found: dict[str, Any]) -> set[str]:
    at = now()
    return {t for t in tokens if _holds(found.get(alive_key(t)), at)}


def alive(tokens: list[str]) -> set[str]:
    """Those of ``tokens`` whose process said it lives recently (one round trip)."""
    return _living(tokens, _ready().get_many([alive_key(t) for t in tokens]))


async def aalive(tokens: list[str]) -> set[str]:
    """Async :func:`alive`."""
    found = await (await _aready()).aget_many([alive_key(t) for t in tokens])
    return _living(tokens, found)


# -- runners' references to queued work ------------------------------------------------


def job_key(session_id: str, task_id: str) -> str:
    return f"{current_settings().KEY_PREFIX}:{session_id}:job:{task_id}"


def remember_job(session_id: str, task_id: str, reference: str, ttl: int) -> None:
    """Keep a task runner's id of the message that will run ``task_id`` (so that a
    cancel can revoke it)."""
    _ready().set_many({job_key(session_id, task_id): reference}, ttl)


def job_reference(session_id: str, task_id: str) -> str | None:
    key = job_key(session_id, task_id)
    value = backend().get_many([key]).get(key)
    return value if isinstance(value, str) else None


def queued_key(session_id: str, task_id: str) -> str:
    return f"{current_settings().KEY_PREFIX}:{session_id}:q:{task_id}"


def remember_queued(session_id: str, task_id: str, job: dict[str, str], ttl: int) -> None:
    """Keep what a runner knows of the queued job of ``task_id`` (plain JSON data;
    ``progress_ui.engine.queued``), so readers can ask its queue about it."""
    backend().set_many({queued_key(session_id, task_id): job}, ttl)


async def aremember_queued(session_id: str, task_id: str, job: dict[str, str], ttl: int) -> None:
    """Async :func:`remember_queued`."""
    await backend().aset_many({queued_key(session_id, task_id): job}, ttl)


def _queued(session_id: str, found: dict[str, Any], task_ids: list[str]) -> dict[str, Any]:
    return {t: v for t in task_ids if isinstance(v := found.get(queued_key(session_id, t)), dict)}


def queued_jobs(session_id: str, task_ids: list[str]) -> dict[str, Any]:
    """Task id -> its remembered queued job, for those of ``task_ids`` that have one
    (one round trip)."""
    keys = [queued_key(session_id, t) for t in task_ids]
    return _queued(session_id, backend().get_many(keys), task_ids)


async def aqueued_jobs(session_id: str, task_ids: list[str]) -> dict[str, Any]:
    """Async :func:`queued_jobs`."""
    keys = [queued_key(session_id, t) for t in task_ids]
    return _queued(session_id, await backend().aget_many(keys), task_ids)
