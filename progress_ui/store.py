"""Cache keys and cache I/O for sessions. The only module that talks to the cache.

Layout: one key for the session's (immutable) description and one key per task,
so writers of different tasks never overwrite each other. A snapshot is read
with a single ``get_many`` round trip.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

from django.core.cache import BaseCache, caches

from .conf import settings
from .records import TaskRecord

#: Bump when the stored shape changes incompatibly.
FORMAT = 1


class SessionMeta(TypedDict):
    format: int
    #: ``[task_id, name]`` pairs in display order.
    tasks: list[list[str]]
    #: Who may read the session (see ``progress_ui.ownership``), or None for anyone.
    owner: str | None


def cache() -> BaseCache:
    return caches[settings.CACHE_ALIAS]


def meta_key(session_id: str) -> str:
    return f"{settings.KEY_PREFIX}:{session_id}"


def task_key(session_id: str, task_id: str) -> str:
    return f"{settings.KEY_PREFIX}:{session_id}:t:{task_id}"


def all_keys(session_id: str, task_ids: list[str]) -> list[str]:
    return [meta_key(session_id), *(task_key(session_id, t) for t in task_ids)]


def create(session_id: str, meta: SessionMeta, records: dict[str, TaskRecord], ttl: int) -> None:
    data: dict[str, Any] = {meta_key(session_id): meta}
    data.update({task_key(session_id, t): r for t, r in records.items()})
    failed = cache().set_many(data, timeout=ttl)
    if failed:
        raise RuntimeError(f"progress_ui: the cache refused keys {failed!r}")


def load_meta(session_id: str) -> SessionMeta | None:
    value = cache().get(meta_key(session_id))
    return _as_meta(value)


async def aload_meta(session_id: str) -> SessionMeta | None:
    value = await cache().aget(meta_key(session_id))
    return _as_meta(value)


def _as_meta(value: Any) -> SessionMeta | None:
    if isinstance(value, dict) and value.get("format") == FORMAT:
        return cast(SessionMeta, value)
    return None


def _split(
    session_id: str, task_ids: list[str], found: dict[str, Any]
) -> tuple[SessionMeta | None, dict[str, TaskRecord]]:
    meta = _as_meta(found.get(meta_key(session_id)))
    records = {t: found[k] for t in task_ids if (k := task_key(session_id, t)) in found}
    return meta, cast(dict[str, TaskRecord], records)


def read_all(
    session_id: str, task_ids: list[str]
) -> tuple[SessionMeta | None, dict[str, TaskRecord]]:
    """The session description and every task record, in one round trip."""
    found = cache().get_many(all_keys(session_id, task_ids))
    return _split(session_id, task_ids, found)


async def aread_all(
    session_id: str, task_ids: list[str]
) -> tuple[SessionMeta | None, dict[str, TaskRecord]]:
    found = await cache().aget_many(all_keys(session_id, task_ids))
    return _split(session_id, task_ids, found)


def read_task(session_id: str, task_id: str) -> TaskRecord | None:
    return cast("TaskRecord | None", cache().get(task_key(session_id, task_id)))


def write_task(
    session_id: str, meta: SessionMeta, task_id: str, record: TaskRecord, ttl: int
) -> None:
    """Store one task and renew the session description with it (one round trip
    on Redis). Rewriting the description is safe: it never changes after create."""
    cache().set_many({meta_key(session_id): meta, task_key(session_id, task_id): record}, ttl)


def renew_finished(
    session_id: str, meta: SessionMeta, finished: dict[str, TaskRecord], ttl: int
) -> None:
    """Store the description and the ``finished`` task records again with a new
    lifetime (once the session has finished). Only records that can no longer
    change are passed: rewriting a pending one could undo a concurrent start."""
    create(session_id, meta, finished, ttl)


def delete(session_id: str, task_ids: list[str]) -> None:
    cache().delete_many(all_keys(session_id, task_ids))
