"""What every store backend offers (:class:`StoreBackend`), and the shapes they share.

Layout: one key for the session's (immutable) description, one key per task for
its progress, and one per task for how it ended, so writers of different tasks
never overwrite each other. The end key is set only if absent (atomic on Redis,
LocMem and the database cache): the first of ``complete``, ``error`` and
``cancel`` wins, and a progress write that lands later (it read the task before
it ended) changes nothing readers see, since they prefer the end key.

A backend turns the errors that mean "the cache cannot be reached right now"
(a refused or timed-out connection, a database or file system error) into
:class:`CacheUnavailable`, and lets every other exception through: a bug, or a
change in a dependency, must not look like an outage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, NotRequired, Protocol, TypedDict, TypeVar, cast

from django.core.cache import BaseCache

from progress_ui.conf import current as current_settings
from progress_ui.core.records import TaskRecord, new_record
from progress_ui.engine.plans import Op, Plan
from progress_ui.engine.store.clock import StoreClock
from progress_ui.exceptions import CacheUnavailable as CacheUnavailable

V = TypeVar("V")

#: Bump when the stored shape changes incompatibly.
FORMAT = 1


class SessionMeta(TypedDict):
    format: int
    #: ``[task_id, name]`` pairs in display order.
    tasks: list[list[str]]
    #: Who may read the session (see ``progress_ui.engine.ownership``), or None for anyone.
    owner: str | None
    #: Task id -> weight in the overall percent; absent means equal weights.
    weights: NotRequired[dict[str, float]]
    #: For a child session: the parent session (``ProgressSession.to_reference()``)
    #: and the parent's task that this session's progress rolls up into.
    parent: NotRequired[dict[str, Any]]
    parent_task: NotRequired[str]


#: Edits a task record in place; True if it changed it (False: nothing to store).
#: It may raise (a cancelled task raises ``TaskCancelled``): that propagates.
Change = Callable[[TaskRecord], bool]


class Written(NamedTuple):
    """What :meth:`StoreBackend.update` or :meth:`StoreBackend.end_task` did."""

    #: True when the changed record was stored.
    stored: bool
    #: The task as this write last saw it: the stored record, or what was there.
    record: TaskRecord | None
    #: True when the task had already ended (its end key was set), so the
    #: write could not change it.
    ended: bool


# -- keys (before the cache backend's own KEY_PREFIX, version and key function) --------


def meta_key(session_id: str) -> str:
    return f"{current_settings().KEY_PREFIX}:{session_id}"


def task_key(session_id: str, task_id: str) -> str:
    return f"{current_settings().KEY_PREFIX}:{session_id}:t:{task_id}"


def end_key(session_id: str, task_id: str) -> str:
    return f"{current_settings().KEY_PREFIX}:{session_id}:e:{task_id}"


def all_keys(session_id: str, task_ids: list[str]) -> list[str]:
    return [
        meta_key(session_id),
        *(task_key(session_id, t) for t in task_ids),
        *(end_key(session_id, t) for t in task_ids),
    ]


def as_meta(value: Any) -> SessionMeta | None:
    if isinstance(value, dict) and value.get("format") == FORMAT:
        return cast(SessionMeta, value)
    return None


def effective(session_id: str, task_id: str, found: dict[str, Any]) -> TaskRecord | None:
    """The task as readers see it: how it ended outranks its progress record."""
    value = found.get(end_key(session_id, task_id), found.get(task_key(session_id, task_id)))
    return cast("TaskRecord | None", value)


def apply_change(found: TaskRecord | None, ended: bool, change: Change) -> TaskRecord | None:
    """The changed copy of ``found`` (a new record if None) to store, or None when
    there is nothing to store. An ended task is never changed: ``change`` still
    sees it, only to raise (a cancelled task raises ``TaskCancelled``)."""
    record = cast(TaskRecord, dict(found or {})) if ended else None
    if record is not None:
        change(record)
        return None
    record = cast(TaskRecord, dict(found or new_record()))
    return record if change(record) else None


# -- errors ------------------------------------------------------------------------


@contextmanager
def translated(unavailable: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Raise :class:`CacheUnavailable` (the cause chained) for ``unavailable`` errors."""
    try:
        yield
    except unavailable as exc:
        raise CacheUnavailable(f"progress_ui: the cache failed ({type(exc).__name__})") from exc


async def atranslated(
    unavailable: tuple[type[BaseException], ...], call: Callable[[], Awaitable[V]]
) -> V:
    with translated(unavailable):
        return await call()


# -- the protocol ---------------------------------------------------------------------


class StoreBackend(Protocol):
    """Cache I/O for sessions, one object per cache alias
    (``progress_ui.engine.store.backend()``). Keys are passed as made by the
    functions above; the backend applies the cache's own key making.

    Every method raises :class:`CacheUnavailable` when the cache cannot be reached."""

    #: The cache alias this backend serves.
    alias: str
    #: This process's offset to the store's clock (``progress_ui.engine.store.clock``).
    clock: StoreClock

    @property
    def cache(self) -> BaseCache:
        """A Django cache object of the alias (the backend's key making)."""

    def clock_reading(self) -> Op[float] | None:
        """The step that reads the store's own clock (seconds since the epoch), or
        None when the store has no clock but this process's. No I/O until run."""

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """``cache.get_many(keys)``: one round trip."""

    async def aget_many(self, keys: list[str]) -> dict[str, Any]:
        """Async :meth:`get_many`."""

    def set_many(self, data: dict[str, Any], ttl: int) -> None:
        """Store every value of ``data`` for ``ttl`` seconds."""

    async def aset_many(self, data: dict[str, Any], ttl: int) -> None:
        """Async :meth:`set_many`."""

    def add(self, key: str, value: Any, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds only if ``key`` holds nothing; True
        if it was stored (atomic where the cache's ``add`` is)."""

    async def aadd(self, key: str, value: Any, ttl: int) -> bool:
        """Async :meth:`add`."""

    def touch(self, keys: list[str], ttl: int) -> None:
        """Renew the lifetime of the existing ``keys`` without rewriting them."""

    def delete_many(self, keys: list[str]) -> None: ...

    async def adelete_many(self, keys: list[str]) -> None: ...

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
        """The plan (``progress_ui.engine.plans``) that applies ``change`` to the
        task's progress record and stores it, unless the task has ended; renews
        the description with it and publishes the change.
        Where the backend can compare-and-set, a concurrent change of the same
        task is never undone: the change is redone on what is there. ``memo`` is
        the writer's own (one per session object): the backend may keep there
        what it needs to skip a read next time."""

    def end_task(
        self, session_id: str, meta: SessionMeta, task_id: str, change: Change, *, ttl: int
    ) -> Plan[Written]:
        """The plan that applies ``change`` to the task and stores the result as
        how it ended, unless it has an ending already (the first one wins);
        renews the description and publishes the change."""

    def publish(self, session_id: str) -> None:
        """Wake the viewers of the session (nothing where changes are not pushed)."""

    async def apublish(self, session_id: str) -> None:
        """Async :meth:`publish`."""

    async def aclose_loop_clients(self) -> None:
        """Close the clients of the running event loop, which is about to end
        (a loop made to run one async job in a worker thread)."""

    def channel(self, session_id: str) -> str | None:
        """The pub/sub channel of the session's changes, or None (not pushed)."""

    @property
    def push_server(self) -> str | None:
        """The URL of the server that publishes changes, or None (not pushed)."""
