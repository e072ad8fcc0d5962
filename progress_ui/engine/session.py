"""``ProgressSession``: named tasks whose progress lives in Django's cache.

Every read goes to the cache and every write changes one task's own keys
(``progress_ui.engine.store``), so a session obtained with ``get()`` in any
thread, request or process sees and drives the same state as the one that
created it. This class is the facade; the work is done by its parts:
``lifecycle`` (the write and lifecycle calls and their async twins, one plan
each), ``writes`` (transitions and how they are stored), ``reads`` (worker
loss, the aggregates), ``rollup`` (references, child sessions), ``handles`` and
``follow``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, ParamSpec, TypeVar, cast

from asgiref.sync import sync_to_async

from progress_ui.conf import current as current_settings
from progress_ui.core.records import TaskRecord, new_record
from progress_ui.core.snapshot import (
    SessionSnapshot,
    build_snapshot,
    expired_snapshot,
    has_ended,
)
from progress_ui.core.status import ProgressStatus
from progress_ui.core.validation import is_valid_session_id
from progress_ui.engine import held, reads, store
from progress_ui.engine.follow import (
    afollow_snapshots,
    iterate_blocking,
    ndjson_lines,
    read_in_place,
)
from progress_ui.engine.handles import ParallelTask, SequentialTask, calling
from progress_ui.engine.lifecycle import SessionWrites
from progress_ui.engine.plans import Plan, arun, run
from progress_ui.engine.reads import SessionState
from progress_ui.engine.rollup import (
    RollUp,
    SessionReference,
    meta_of_reference,
    new_meta,
    reference_of,
)
from progress_ui.engine.writes import TaskWriter

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = ["ProgressSession", "SessionReference", "SessionState", "new_session_id"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def new_session_id() -> str:
    """192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


class ProgressSession(SessionWrites):
    """Tracks named tasks through PENDING, RUNNING, COMPLETING and COMPLETE, or
    ERROR or CANCELLED.

    Create with :meth:`create`, look up with :meth:`get`. Instances hold only the
    session id and the (immutable) task list; state is read from the cache.
    Every write and lifecycle call has an async twin with Django's ``a`` prefix
    (:meth:`acreate`, :meth:`aupdate`, :meth:`aiterate`...) that behaves alike
    on every cache and does not block the event loop.
    """

    def __init__(self, session_id: str, meta: store.SessionMeta) -> None:
        self._id = session_id
        self._meta = meta
        self._names: dict[str, str] = {t: n for t, n in meta["tasks"]}
        self._rollup: RollUp | None = None
        if "parent" in meta and "parent_task" in meta:
            parent = ProgressSession.from_reference(cast(SessionReference, meta["parent"]))
            self._rollup = RollUp(session_id, meta, parent, meta["parent_task"])
        self._writer = TaskWriter(session_id, meta, self._roll_up)
        self._lost = reads.LostWorkers(session_id, list(self._names), self._writer.finish)

    # -- creation and lookup -------------------------------------------------

    @classmethod
    def create(
        cls,
        tasks: dict[str, str],
        *,
        request: HttpRequest | None = None,
        owner: str | None = None,
        weights: dict[str, float] | None = None,
        parent: tuple[SessionReference, str] | None = None,
    ) -> ProgressSession:
        """Store a new session with ``tasks`` (task id -> display name), all PENDING.

        Pass ``request`` to make the session readable only by that user (or that
        browser's Django session); ``owner`` sets the owner token directly.
        ``weights`` (task id -> a positive number, 1 for tasks left out) makes
        ``overall_percent`` reflect the work: an import weighing 10 moves the
        overall bar ten times as much as a validation weighing 1. ``parent``
        (a session reference and one of its task ids) is set by :meth:`child`.
        """
        session = cls._new(tasks, request, owner, weights, parent)
        store.create(session._id, session._meta, session._pending(), current_settings().TTL)
        return session

    @classmethod
    async def acreate(
        cls,
        tasks: dict[str, str],
        *,
        request: HttpRequest | None = None,
        owner: str | None = None,
        weights: dict[str, float] | None = None,
        parent: tuple[SessionReference, str] | None = None,
    ) -> ProgressSession:
        """Async :meth:`create` (``request.user`` must be loaded already: this does
        not touch the database for it)."""
        session = cls._new(tasks, request, owner, weights, parent)
        await store.acreate(session._id, session._meta, session._pending(), current_settings().TTL)
        return session

    @classmethod
    def _new(
        cls,
        tasks: dict[str, str],
        request: HttpRequest | None,
        owner: str | None,
        weights: dict[str, float] | None,
        parent: tuple[SessionReference, str] | None,
    ) -> ProgressSession:
        meta = new_meta(tasks, request=request, owner=owner, weights=weights, parent=parent)
        return cls(new_session_id(), meta)

    def _pending(self) -> dict[str, TaskRecord]:
        return {t: new_record() for t in self._names}

    def child(
        self, task_id: str, tasks: dict[str, str], *, weights: dict[str, float] | None = None
    ) -> ProgressSession:
        """A session of sub-tasks whose progress rolls up into ``task_id`` of this
        one: the parent task shows the child's overall percent and its current
        sub-task as a step ("Step 2 of 3: Invoices"), completes when all of the
        child's tasks complete, and fails or is cancelled with them. Same owner.
        A cancel of the parent task stops the child's work at its next step."""
        self.check_task(task_id)
        child = ProgressSession.create(
            tasks, owner=self.owner, weights=weights, parent=(self.to_reference(), task_id)
        )
        self.start(task_id)
        return child

    async def achild(
        self, task_id: str, tasks: dict[str, str], *, weights: dict[str, float] | None = None
    ) -> ProgressSession:
        """Async :meth:`child`."""
        self.check_task(task_id)
        child = await ProgressSession.acreate(
            tasks, owner=self.owner, weights=weights, parent=(self.to_reference(), task_id)
        )
        await self.astart(task_id)
        return child

    def _roll_up(self, ended: bool) -> Plan[None]:
        """After a stored change: carry a child session's progress to its parent."""
        if self._rollup is None:
            return
        try:
            yield from self._rollup.after_write(ended)
        except store.CacheUnavailable as exc:
            self._writer.lost_write(exc)

    def to_reference(self) -> SessionReference:
        """This session as plain JSON-able data (id, tasks, owner) that another
        process turns back into it with :meth:`from_reference`, without reading
        the cache: work handed to a task queue starts even while the cache is down."""
        return reference_of(self._id, self._meta)

    @classmethod
    def from_reference(cls, reference: SessionReference) -> ProgressSession:
        """The session that :meth:`to_reference` described (ids are checked again)."""
        return cls(*meta_of_reference(reference))

    @classmethod
    def get(cls, session_id: str) -> ProgressSession | None:
        """The stored session, or None when it expired, never existed or the id is
        malformed (a malformed id never reaches the cache)."""
        if not is_valid_session_id(session_id):
            return None
        meta = store.load_meta(session_id)
        return None if meta is None else cls(session_id, meta)

    @classmethod
    async def aget(cls, session_id: str) -> ProgressSession | None:
        """Async :meth:`get`."""
        if not is_valid_session_id(session_id):
            return None
        meta = await store.aload_meta(session_id)
        return None if meta is None else cls(session_id, meta)

    # -- identity ------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self._id

    @property
    def tasks(self) -> dict[str, str]:
        """Task id -> display name, in display order."""
        return dict(self._names)

    @property
    def owner(self) -> str | None:
        return self._meta["owner"]

    def __repr__(self) -> str:
        return f"<ProgressSession {self._id} tasks={list(self._names)}>"

    # -- running work ----------------------------------------------------------

    def add_sequential(
        self, task_id: str, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> SequentialTask[R]:
        """Run ``func(*args, **kwargs)`` now as task ``task_id``: RUNNING, then
        COMPLETING or ERROR. Exceptions are stored on the returned task
        (``.result`` re-raises them); KeyboardInterrupt and the like mark the task
        ERROR and propagate."""
        self.check_task(task_id)
        return run(SequentialTask.plan(self, task_id, calling(func, *args, **kwargs)))

    async def aadd_sequential(
        self,
        task_id: str,
        func: Callable[P, Awaitable[R]] | Callable[P, R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> SequentialTask[R]:
        """Async :meth:`add_sequential`: ``func`` is a coroutine function (awaited)
        or a plain function (called on the event loop)."""
        self.check_task(task_id)
        return await arun(SequentialTask.plan(self, task_id, calling(func, *args, **kwargs)))

    def add_parallel(self, task_id: str, future: Future[R]) -> ParallelTask[R]:
        """Track ``future`` as task ``task_id``: RUNNING now, COMPLETING or ERROR
        when it resolves (through ``add_done_callback``; no thread is started)."""
        self.check_task(task_id)
        return run(ParallelTask.plan(self, task_id, future))

    async def aadd_parallel(self, task_id: str, future: Future[R]) -> ParallelTask[R]:
        """Async :meth:`add_parallel`: the start is awaited; the ending is written
        by the thread that resolves ``future``, as with :meth:`add_parallel`."""
        self.check_task(task_id)
        return await arun(ParallelTask.plan(self, task_id, future))

    def enqueue(self, task_id: str, task: object, /, *args: object, **kwargs: object) -> object:
        """Hand ``task`` (made with a ``progress_task`` decorator from
        ``progress_ui.contrib``) to its task runner as ``task_id`` of this session,
        with ``*args, **kwargs``. Returns what the runner returns (a Django
        ``TaskResult``, a Celery ``AsyncResult``). An unknown task id raises
        before anything is enqueued."""
        return self._enqueuer(task_id, task, "enqueue_progress")(self, task_id, *args, **kwargs)

    async def aenqueue(
        self, task_id: str, task: object, /, *args: object, **kwargs: object
    ) -> object:
        """Async :meth:`enqueue`: the runner's own async enqueue where it has one
        (Django Tasks' ``aenqueue``), else its enqueue in a worker thread (Celery's
        ``apply_async`` blocks on the broker)."""
        found = getattr(task, "aenqueue_progress", None)
        if found is not None:
            self.check_task(task_id)
            return await found(self, task_id, *args, **kwargs)
        enqueue = self._enqueuer(task_id, task, "enqueue_progress")
        return await sync_to_async(enqueue, thread_sensitive=False)(self, task_id, *args, **kwargs)

    def _enqueuer(self, task_id: str, task: object, name: str) -> Callable[..., object]:
        self.check_task(task_id)
        found: Callable[..., object] | None = getattr(task, name, None)
        if found is None:
            raise TypeError(
                f"{task!r} is not a progress task: decorate it with "
                "progress_ui.contrib.django_tasks.progress_task or "
                "progress_ui.contrib.celery.progress_task."
            )
        return found

    # -- reads -------------------------------------------------------------------
    # read_state() only reads. What viewers use (read, aread, to_dict and the
    # aggregates) also marks lost workers, through mark_lost_workers().

    def read_state(self) -> SessionState:
        """The session's description and task records: one cache round trip, no
        write (but the updates this process holds back for the session are stored
        first: ``progress_ui.engine.held``, a process reads its own writes)."""
        held.flush(self._id)
        return store.read_all(self._id, list(self._names))

    async def aread_state(self) -> SessionState:
        """Async :meth:`read_state`; :meth:`snapshot_of` turns it into a snapshot at
        any moment, so a follower can animate without reading again."""
        await held.aflush(self._id)
        return await store.aread_all(self._id, list(self._names))

    def mark_lost_workers(self, state: SessionState) -> SessionState:
        """Write ERROR to the RUNNING tasks of ``state`` whose process stopped
        beating (see ``progress_ui.engine.liveness``), and to the PENDING ones
        whose queued job its queue reports failed (``progress_ui.engine.queued``),
        and return the state read again if any was. Costs no read otherwise: at
        most one liveness read per runner, and one check of the queued jobs, per
        ``WORKER_BEAT_INTERVAL`` in this process."""
        return self._lost.mark(state)

    async def amark_lost_workers(self, state: SessionState) -> SessionState:
        """Async :meth:`mark_lost_workers`."""
        return await self._lost.amark(state)

    def read(self, now: float | None = None) -> SessionSnapshot | None:
        """The snapshot a viewer sees (one cache round trip), or None if the session
        is gone. Lost workers are marked first (:meth:`mark_lost_workers`)."""
        return self.snapshot_of(self.mark_lost_workers(self.read_state()), now)

    async def aread(self, now: float | None = None) -> SessionSnapshot | None:
        """Async :meth:`read`."""
        return self.snapshot_of(await self.amark_lost_workers(await self.aread_state()), now)

    def snapshot_of(self, state: SessionState, now: float | None = None) -> SessionSnapshot | None:
        """The snapshot of a state read by :meth:`read_state`, at ``now`` (seconds
        since the epoch on the store's clock; by default the current time on it,
        ``store.now()``)."""
        meta, records = state
        if meta is None:
            return None
        return build_snapshot(
            self._id,
            self._names,
            records,
            store.now() if now is None else now,
            current_settings(),
            self._meta.get("weights"),
        )

    def to_dict(self) -> SessionSnapshot:
        """The current snapshot (as :meth:`read`); a vanished session reads as
        ``expired``."""
        return self.read() or expired_snapshot(self._id, self._names)

    async def ato_dict(self) -> SessionSnapshot:
        """Async :meth:`to_dict`."""
        return await self.aread() or expired_snapshot(self._id, self._names)

    # Each aggregate is one snapshot (one read); with a snapshot in hand, the
    # functions of ``progress_ui.engine.reads`` give them all without a read.

    @property
    def status(self) -> ProgressStatus:
        """ERROR > CANCELLED > COMPLETE (every task) > RUNNING > PENDING; COMPLETING
        counts as RUNNING."""
        return reads.status_of(self.to_dict())

    @property
    def has_error(self) -> bool:
        return reads.has_error(self.to_dict())

    @property
    def is_complete(self) -> bool:
        return reads.is_complete(self.to_dict())

    @property
    def is_running(self) -> bool:
        """True while any task is RUNNING or COMPLETING."""
        return reads.is_running(self.to_dict())

    @property
    def overall_percent(self) -> int:
        return self.to_dict()["overall_percent"]

    # -- streams ---------------------------------------------------------------

    def stream(self, poll_interval: float = 0.1) -> Iterator[str]:
        """NDJSON: one JSON snapshot per line, each when the state changed, until
        every task is complete, or up to and including the first snapshot with an
        error (or a cancelled task, or expiry: a session that disappears is looked
        for during ``MISSING_GRACE`` first). A cache that cannot be reached
        ends it with the retry line ``{"retry": <milliseconds>}``
        (``SSE_RETRY_MS``), as the NDJSON endpoint's: call it again after that
        long; it goes on where the session is then.

        (The browsers' HTML stream goes on while other tasks still run after an
        error: ``snapshot.is_settled``.) Runs :meth:`astream` in the calling
        thread, reading the cache there (``follow.iterate_blocking``)."""
        source = read_in_place(self)
        items = afollow_snapshots(
            source,
            poll_interval=poll_interval,
            until=has_ended,
            missing_grace=current_settings().MISSING_GRACE,
        )
        return iterate_blocking(ndjson_lines(self._id, items))

    def astream(self, poll_interval: float = 0.1) -> AsyncIterator[str]:
        """Async :meth:`stream`: the NDJSON pipeline of ``progress_ui:ndjson``
        (``follow.ndjson_lines``), fed by this stream's own poller."""
        items = afollow_snapshots(
            self,
            poll_interval=poll_interval,
            until=has_ended,
            missing_grace=current_settings().MISSING_GRACE,
        )
        return ndjson_lines(self._id, items)

    def delete(self) -> None:
        """Remove the session from the cache now."""
        store.delete(self._id, list(self._names))

    async def adelete(self) -> None:
        """Async :meth:`delete`."""
        await store.adelete(self._id, list(self._names))
