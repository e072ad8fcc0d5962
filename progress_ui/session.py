"""``ProgressSession``: named tasks whose progress lives in Django's cache.

Every read goes to the cache and every write is a read-modify-write of one task's
own key, so a session obtained with ``get()`` in any thread, request or process
sees and drives the same state as the one that created it.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sized
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NotRequired, ParamSpec, TypedDict, TypeVar, cast

from asgiref.sync import sync_to_async

from . import liveness, store
from .conf import current as current_settings
from .estimate import add_sample
from .exceptions import ProgressError, TaskCancelled, UnknownTaskError, user_message
from .follow import afollow_snapshots, ajson_lines, follow_snapshots, json_lines
from .handles import ParallelTask, SequentialTask
from .ownership import owner_for_request
from .records import TaskRecord, new_record, reading_at
from .signals import task_cancelled
from .snapshot import SessionSnapshot, build_snapshot, expired_snapshot, has_ended, is_settled
from .status import ProgressStatus, ReportedStatus
from .validation import (
    check_amount,
    clean_text,
    is_valid_session_id,
    log_id,
    validate_task_id,
)

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger("progress_ui")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


#: How far ahead a write sets its floor (seconds): readers between the write's
#: read and its landing must not see more than the write keeps.
_WRITE_LEAD = 0.05
#: Seconds between two "progress was not saved" warnings of one process.
_LOST_WRITE_WARNING_INTERVAL = 10.0
#: Compare-and-set attempts of one write before the last writer simply wins.
_WRITE_ATTEMPTS = 5
_last_lost_write_warning = -_LOST_WRITE_WARNING_INTERVAL


#: What a read of the session found: its description (None if it is gone) and
#: the record of every task, as ``store.read_all`` returns them.
SessionState = tuple[store.SessionMeta | None, dict[str, TaskRecord]]


def _own_token() -> str:
    return liveness.process_token()


def _runners(records: dict[str, TaskRecord]) -> dict[str, str]:
    """Task id -> runner token of the RUNNING tasks whose runner is known."""
    return {
        t: runner
        for t, r in records.items()
        if r["status"] == ProgressStatus.RUNNING and (runner := r.get("runner"))
    }


class SessionReference(TypedDict):
    """What :meth:`ProgressSession.to_reference` gives: JSON for task queues."""

    session_id: str
    tasks: list[list[str]]
    owner: str | None
    weights: NotRequired[dict[str, float]]
    parent: NotRequired[dict[str, Any]]
    parent_task: NotRequired[str]


def _checked_weights(weights: dict[str, float], task_ids: list[str]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(task_ids))
    if unknown:
        raise UnknownTaskError(
            f"Weights for unknown tasks {', '.join(unknown)}; this session has: "
            f"{', '.join(task_ids)}"
        )
    checked = {}
    for task_id, weight in weights.items():
        value = check_amount(f"weights[{task_id!r}]", weight)
        if not value:
            raise ValueError(f"weights[{task_id!r}] must be a number above 0, got {weight!r}")
        checked[task_id] = float(value)
    return checked


def new_session_id() -> str:
    """192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


class ProgressSession:
    """Tracks named tasks through PENDING, RUNNING, COMPLETING, COMPLETE and ERROR.

    Create with :meth:`create`, look up with :meth:`get`. Instances hold only the
    session id and the (immutable) task list; state is read from the cache.
    """

    def __init__(self, session_id: str, meta: store.SessionMeta) -> None:
        self._id = session_id
        self._meta = meta
        self._names: dict[str, str] = {t: n for t, n in meta["tasks"]}
        #: The parent session and task this child session rolls up into.
        self._parent: tuple[ProgressSession, str] | None = None
        if "parent" in meta and "parent_task" in meta:
            parent = ProgressSession.from_reference(cast(SessionReference, meta["parent"]))
            self._parent = (parent, meta["parent_task"])
        self._rolled_up_at = -math.inf
        #: Task id -> the version this object last read or wrote, the base of its
        #: next compare-and-set write (see :meth:`_write_if_unchanged`).
        self._versions: dict[str, store.TaskVersion] = {}

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
        conf = current_settings()
        if not isinstance(tasks, dict) or not tasks:
            raise ValueError("tasks must be a non-empty dict of task id -> display name.")
        if len(tasks) > conf.MAX_TASKS:
            raise ValueError(
                f"A session holds at most {conf.MAX_TASKS} tasks (got {len(tasks)}); "
                "raise PROGRESS_UI['MAX_TASKS'] if you need more."
            )
        pairs = [
            [validate_task_id(t), clean_text(name, conf.MAX_NAME_LENGTH) or t]
            for t, name in tasks.items()
        ]
        names_length = sum(len(name) for _, name in pairs)
        if names_length > conf.MAX_SESSION_TEXT:
            raise ValueError(
                f"The task names hold {names_length} characters together; a session holds "
                f"at most {conf.MAX_SESSION_TEXT} (PROGRESS_UI['MAX_SESSION_TEXT'])."
            )
        if request is not None and owner is None:
            owner = owner_for_request(request)
        meta = store.SessionMeta(format=store.FORMAT, tasks=pairs, owner=owner)
        if weights:
            meta["weights"] = _checked_weights(weights, [t for t, _ in pairs])
        if parent is not None:
            meta["parent"], meta["parent_task"] = dict(parent[0]), parent[1]
        session_id = new_session_id()
        store.create(session_id, meta, {t: new_record() for t, _ in pairs}, conf.TTL)
        return cls(session_id, meta)

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

    def _roll_up(self, ended: bool) -> None:
        """Carry this child session's progress to its parent task (throttled to
        ``ITERATE_WRITE_INTERVAL``, except when a task ended)."""
        if self._parent is None:
            return
        now = time.monotonic()
        if not ended and now - self._rolled_up_at < current_settings().ITERATE_WRITE_INTERVAL:
            return
        self._rolled_up_at = now
        parent, task_id = self._parent
        try:
            meta, records = store.read_all(self._id, list(self._names))
        except store.CacheUnavailable as exc:
            self._lost_write(exc)
            return
        # As it will read once completing animations are over: the parent gets no
        # further write when they end.
        settled_at = time.time() + current_settings().COMPLETING_DURATION
        snapshot = self._build(meta, records, settled_at)
        if snapshot is None:
            return
        tasks = snapshot["tasks"]
        status = ReportedStatus(snapshot["status"])
        if status is ReportedStatus.COMPLETE:
            parent.complete(task_id)
        elif status is ReportedStatus.ERROR:
            failed = next(t for t in tasks.values() if t["status"] == ReportedStatus.ERROR)
            parent.error(task_id, failed["message"])
        elif status is ReportedStatus.CANCELLED:
            parent.cancel(task_id)
        else:
            # Read from the records: a completing sub-task is done here, though
            # snapshots report it as running.
            done = {t for t, r in records.items() if ProgressStatus(r["status"]).work_ended}
            running = [t for t in self._names if t not in done and t in records]
            running = [t for t in running if records[t]["status"] == ProgressStatus.RUNNING]
            parent.update(
                task_id,
                percent=snapshot["overall_percent"],
                step=min(len(done) + 1, len(tasks)),
                steps=len(tasks),
                step_name=self._names[running[0]] if running else "",
            )

    def to_reference(self) -> SessionReference:
        """This session as plain JSON-able data (id, tasks, owner) that another
        process turns back into it with :meth:`from_reference`, without reading
        the cache: work handed to a task queue starts even while the cache is down."""
        reference: SessionReference = {
            "session_id": self._id,
            "tasks": self._meta["tasks"],
            "owner": self._meta["owner"],
        }
        if "weights" in self._meta:
            reference["weights"] = self._meta["weights"]
        if "parent" in self._meta and "parent_task" in self._meta:
            reference["parent"] = self._meta["parent"]
            reference["parent_task"] = self._meta["parent_task"]
        return reference

    @classmethod
    def from_reference(cls, reference: SessionReference) -> ProgressSession:
        """The session that :meth:`to_reference` described (ids are checked again)."""
        session_id = reference["session_id"]
        if not is_valid_session_id(session_id):
            raise ValueError(f"Not a session id: {session_id!r}")
        pairs = [[validate_task_id(t), str(name)] for t, name in reference["tasks"]]
        meta = store.SessionMeta(format=store.FORMAT, tasks=pairs, owner=reference["owner"])
        if reference.get("weights"):
            meta["weights"] = _checked_weights(reference["weights"], [t for t, _ in pairs])
        if "parent" in reference and "parent_task" in reference:
            meta["parent"] = reference["parent"]
            meta["parent_task"] = reference["parent_task"]
        return cls(session_id, meta)

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

    def check_task(self, task_id: str) -> None:
        """Raise ``UnknownTaskError`` (naming the valid ids) unless ``task_id`` is
        a task of this session."""
        if task_id not in self._names:
            raise UnknownTaskError(
                f"Unknown task {task_id!r}; this session has: {', '.join(self._names)}"
            )

    # -- writes ----------------------------------------------------------------

    def _write(
        self,
        task_id: str,
        change: Callable[[TaskRecord, float], bool],
        *,
        ends: bool = False,
    ) -> bool:
        """Read the task's record, let ``change`` edit it, store it if it changed.
        True when a change was stored.

        The record's floor is set to the percent displayed a moment from now, so
        the bar never moves backwards whatever the change does to the inputs
        (the lead covers the time the write takes to land). ``ends=True`` stores
        an ending (complete, error, cancel) in the task's end key, first one wins
        (see ``progress_ui.store``). A cache that cannot be reached loses the
        write (see :meth:`_lost_write`); what ``change`` raises (bad input, a
        cancelled task) always propagates.
        """
        self.check_task(task_id)
        if not ends and store.can_compare_and_set():
            return self._write_if_unchanged(task_id, change)
        conf = current_settings()
        try:
            record = store.read_task(self._id, task_id) or new_record()
        except store.CacheUnavailable as exc:
            return self._lost_write(exc)
        if not self._apply(task_id, change, record):
            return False
        try:
            if ends:
                if not store.end_task(self._id, self._meta, task_id, record, conf.TTL):
                    return False  # it had ended meanwhile: that ending stands
            else:
                store.write_task(self._id, self._meta, task_id, record, conf.TTL)
            self._after_stored(task_id, record)
        except store.CacheUnavailable as exc:
            return self._lost_write(exc)
        self._roll_up(ended=ends)
        return True

    def _after_stored(self, task_id: str, record: TaskRecord) -> None:
        """Once a record that ends the task's work is stored: this process stops
        running it, and a settled session gets its post-finish lifetime."""
        if ProgressStatus(record["status"]).work_ended:
            liveness.release(self._id, task_id)
            self._keep_if_finished()

    def _apply(
        self, task_id: str, change: Callable[[TaskRecord, float], bool], record: TaskRecord
    ) -> bool:
        """Raise the record's floor to what shows a moment from now, then let
        ``change`` edit it; True if it changed."""
        now = time.time()
        shown = reading_at(record, now + _WRITE_LEAD, current_settings())
        record["floor"] = max(record["floor"], shown.percent)
        try:
            return change(record, now)
        except TaskCancelled:
            liveness.release(self._id, task_id)  # this process stops running it
            raise

    def _write_if_unchanged(
        self, task_id: str, change: Callable[[TaskRecord, float], bool]
    ) -> bool:
        """:meth:`_write` on a cache that can compare-and-set (Redis): the change
        is based on the version this object last wrote (no read), and stored only
        if nobody changed the task since; otherwise it is redone on what is there.
        One round trip per write, and concurrent writers never undo each other."""
        conf = current_settings()
        try:
            version = self._versions.pop(task_id, None)
            if version is None:
                version = store.read_task_version(self._id, task_id)
            for _ in range(_WRITE_ATTEMPTS):
                if version.ended:
                    # The ending outranks any progress: ``change`` only decides
                    # whether to raise (a cancelled task raises TaskCancelled).
                    self._apply(task_id, change, cast(TaskRecord, dict(version.record or {})))
                    return False
                record = cast(TaskRecord, dict(version.record or new_record()))
                if not self._apply(task_id, change, record):
                    self._versions[task_id] = version
                    return False
                stored, version = store.write_task_if(
                    self._id, self._meta, task_id, record, conf.TTL, version
                )
                if stored:
                    self._versions[task_id] = version
                    break
            else:
                # Contended beyond reason: last writer wins, as on other caches.
                store.write_task(self._id, self._meta, task_id, record, conf.TTL)
            self._after_stored(task_id, record)
        except store.CacheUnavailable as exc:
            return self._lost_write(exc)
        self._roll_up(ended=False)
        return True

    def _lost_write(self, exc: store.CacheUnavailable) -> bool:
        """A progress write the cache did not take: raise under ``STRICT_WRITES``,
        else warn (at most once per ``_LOST_WRITE_WARNING_INTERVAL`` per process)
        and go on, so progress never fails the job it reports on."""
        global _last_lost_write_warning
        if current_settings().STRICT_WRITES:
            raise exc
        now = time.monotonic()
        if now - _last_lost_write_warning >= _LOST_WRITE_WARNING_INTERVAL:
            _last_lost_write_warning = now
            logger.warning(
                "progress_ui: progress of session %s was not saved (%s: %s); the work "
                "goes on. Set PROGRESS_UI['STRICT_WRITES'] = True to raise instead.",
                log_id(self._id),
                type(exc.__cause__ or exc).__name__,
                exc,
            )
        return False

    def _keep_if_finished(self) -> None:
        """Once the session has settled, give it its post-finish lifetime.

        Every writer stores its own record before reading the others, so the
        last of concurrent finishers always sees the session as settled. The
        description is this object's own (it never changes), not the one read
        back: that key may have just expired (a cache that stores expiry to the
        second can drop it early), and the write that finished the session has
        just renewed it anyway."""
        conf = current_settings()
        _, records = store.read_all(self._id, list(self._names))
        current = build_snapshot(
            self._id, self._names, records, time.time(), conf, self._meta.get("weights")
        )
        if is_settled(current):
            ended = {t: r for t, r in records.items() if ProgressStatus(r["status"]).work_ended}
            store.renew_finished(self._id, self._meta, ended, conf.FINISHED_TTL)

    def _claim(self, task_id: str, record: TaskRecord) -> None:
        # This process runs the task from now on: readers watch its liveness.
        record["runner"] = liveness.claim(self._id, list(self._names), task_id)

    def start(self, task_id: str) -> None:
        """Mark a task RUNNING in this process; its simulated percent starts moving.
        Starting a running task only records that this process now runs it;
        starting a finished one raises ValueError, a cancelled one TaskCancelled."""

        def change(r: TaskRecord, now: float) -> bool:
            status = ProgressStatus(r["status"])
            if status is ProgressStatus.CANCELLED:
                raise TaskCancelled(f"Task {task_id!r} was cancelled.")
            if status.is_final:
                raise ValueError(
                    f"Task {task_id!r} already finished ({status.value}); "
                    "create a new session to run it again."
                )
            if status is ProgressStatus.PENDING:
                r["status"] = ProgressStatus.RUNNING.value
                r["started_at"] = now
                r["floor"] = 0.0
            elif status is not ProgressStatus.RUNNING or r.get("runner") == _own_token():
                return False
            self._claim(task_id, r)
            return True

        self._write(task_id, change)

    def complete(self, task_id: str, message: str | None = None) -> None:
        """Mark a task COMPLETING: its percent animates to 100 over
        ``COMPLETING_DURATION`` seconds, then it reads as COMPLETE. A task that
        was never started completes from 0. Completing twice does nothing."""

        def change(r: TaskRecord, now: float) -> bool:
            if ProgressStatus(r["status"]).work_ended:
                return False
            if r["started_at"] is None:
                r["started_at"] = now
            r["status"] = ProgressStatus.COMPLETING.value
            r["finished_at"] = now
            if message is not None:
                r["message"] = clean_text(message, self._message_limit())
            return True

        self._write(task_id, change, ends=True)

    def _message_limit(self) -> int:
        """Longest message of a task: ``MAX_MESSAGE_LENGTH``, and the session's text
        budget shared among its tasks."""
        conf = current_settings()
        return min(conf.MAX_MESSAGE_LENGTH, max(1, conf.MAX_SESSION_TEXT // len(self._names)))

    def error(self, task_id: str, message: str | None = None) -> None:
        """Mark a task ERROR with a message safe to show to users. The bar stays
        where it was. A finished task is left as it is."""
        self._end(task_id, ProgressStatus.ERROR, message, current_settings().GENERIC_ERROR_MESSAGE)

    def _end(
        self,
        task_id: str,
        status: ProgressStatus,
        message: str | None,
        default: str,
        *,
        only_runner: str | None = None,
    ) -> bool:
        text = clean_text(default if message is None else message, self._message_limit())

        def change(r: TaskRecord, now: float) -> bool:
            if ProgressStatus(r["status"]).work_ended:
                return False  # it has ended already (a completing bar included)
            if only_runner is not None and (
                r["status"] != ProgressStatus.RUNNING or r.get("runner") != only_runner
            ):
                return False  # another process took the task over meanwhile
            r["status"] = status.value
            r["finished_at"] = now
            r["message"] = text
            if r["started_at"] is None:
                r["started_at"] = now
            return True

        return self._write(task_id, change, ends=True)

    def fail(self, task_id: str, exc: BaseException) -> None:
        """Mark a task ERROR because of ``exc``: a ``ProgressError``'s text is shown,
        anything else shows the generic message and is logged with its traceback."""
        conf = current_settings()
        if not isinstance(exc, ProgressError):
            logger.error(
                "progress_ui task %r of session %s failed",
                task_id,
                log_id(self._id),
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        self.error(
            task_id,
            user_message(exc, generic=conf.GENERIC_ERROR_MESSAGE, max_length=self._message_limit()),
        )

    def cancel(self, task_id: str | None = None, message: str | None = None) -> list[str]:
        """Cancel one task, or every unfinished task of the session. Cooperative:
        the work raises ``TaskCancelled`` at its next ``update()``, ``iterate()``
        step or ``check_cancelled()``, and work not yet started never runs.
        Returns the ids of the tasks this call cancelled (finished ones stay as
        they are); ``task_cancelled`` is sent for each."""
        task_ids = list(self._names) if task_id is None else [task_id]
        for t in task_ids:
            self.check_task(t)
        default = current_settings().CANCELLED_MESSAGE
        cancelled = [
            t for t in task_ids if self._end(t, ProgressStatus.CANCELLED, message, default)
        ]
        for t in cancelled:
            task_cancelled.send(sender=type(self), session=self, task_id=t)
        return cancelled

    def detach(self, task_id: str) -> None:
        """This process stops running the task without finishing it (a retry will
        run it again): it stays RUNNING, and its liveness no longer depends on
        this process. Until the retry starts, only the session's TTL ends it."""

        def change(r: TaskRecord, now: float) -> bool:
            if r["status"] != ProgressStatus.RUNNING or r.get("runner") is None:
                return False
            r["runner"] = None
            return True

        self._write(task_id, change)
        liveness.release(self._id, task_id)

    def check_cancelled(self, task_id: str) -> None:
        """Raise ``TaskCancelled`` if the task was cancelled (one cache read).
        A cache that cannot be reached reads as not cancelled."""
        self.check_task(task_id)
        try:
            record = store.read_task(self._id, task_id)
        except store.CacheUnavailable as exc:
            self._lost_write(exc)
            return
        if record is not None and record["status"] == ProgressStatus.CANCELLED:
            raise TaskCancelled(f"Task {task_id!r} was cancelled.")

    def update(
        self,
        task_id: str,
        *,
        current: float | None = None,
        total: float | None = None,
        percent: float | None = None,
        message: str | None = None,
        step: int | None = None,
        steps: int | None = None,
        step_name: str | None = None,
    ) -> None:
        """Report measured progress (``current`` of ``total``, or ``percent``), a
        message, and/or the sub-step the task is at (``step`` of ``steps``, named
        ``step_name``: "step 3 of 12: invoices.csv"). Starts the task if it is
        still pending. Ignored once finished; raises ``TaskCancelled`` once
        cancelled."""
        numbers = {
            "current": current,
            "total": total,
            "percent": percent,
            "step": step,
            "steps": steps,
        }
        checked = {label: check_amount(label, value) for label, value in numbers.items()}

        def change(r: TaskRecord, now: float) -> bool:
            status = ProgressStatus(r["status"])
            if status is ProgressStatus.CANCELLED:
                raise TaskCancelled(f"Task {task_id!r} was cancelled.")
            if status.work_ended:
                return False
            if status is ProgressStatus.PENDING:
                r["status"] = ProgressStatus.RUNNING.value
                r["started_at"] = now
            if status is ProgressStatus.PENDING or r.get("runner") != _own_token():
                self._claim(task_id, r)
            if checked["current"] is not None:
                r["current"] = checked["current"]
                # Samples ride on writes that happen anyway: no write per tick.
                r["samples"] = add_sample(r.get("samples", []), now, float(checked["current"]))
            if checked["total"] is not None:
                r["total"] = checked["total"]
            if checked["percent"] is not None:
                r["percent"] = min(100.0, float(checked["percent"]))
            if message is not None:
                r["message"] = clean_text(message, self._message_limit())
            if checked["step"] is not None:
                r["step"] = int(checked["step"])
            if checked["steps"] is not None:
                r["steps"] = int(checked["steps"])
            if step_name is not None:
                r["step_name"] = clean_text(step_name, self._message_limit())
            return True

        self._write(task_id, change)

    def iterate(
        self,
        task_id: str,
        iterable: Iterable[T],
        *,
        total: int | None = None,
        message: str | None = None,
        complete: bool = True,
    ) -> Iterator[T]:
        """Yield from ``iterable`` while reporting ``current``/``total`` to the task.

        ``total`` defaults to ``len(iterable)`` when it has one. Writes are
        throttled to one per ``ITERATE_WRITE_INTERVAL``; the last count is always
        written. With ``complete=True`` the task completes when the iterable is
        exhausted (not on ``break`` or an exception).
        """
        self.check_task(task_id)
        if total is None and isinstance(iterable, Sized):
            total = len(iterable)
        interval = current_settings().ITERATE_WRITE_INTERVAL
        self.update(task_id, current=0, total=total, message=message)
        last_write = time.monotonic()
        count = 0
        written = 0
        try:
            for item in iterable:
                yield item
                count += 1
                if time.monotonic() - last_write >= interval:
                    self.update(task_id, current=count)
                    written, last_write = count, time.monotonic()
        finally:
            if count != written:
                self.update(task_id, current=count)
        if complete:
            self.complete(task_id)

    # -- running work ----------------------------------------------------------

    def add_sequential(
        self, task_id: str, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> SequentialTask[R]:
        """Run ``func(*args, **kwargs)`` now as task ``task_id``: RUNNING, then
        COMPLETING or ERROR. Exceptions are stored on the returned task
        (``.result`` re-raises them); KeyboardInterrupt and the like mark the task
        ERROR and propagate."""
        self.check_task(task_id)
        return SequentialTask.run(self, task_id, func, *args, **kwargs)

    def add_parallel(self, task_id: str, future: Future[R]) -> ParallelTask[R]:
        """Track ``future`` as task ``task_id``: RUNNING now, COMPLETING or ERROR
        when it resolves (through ``add_done_callback``; no thread is started)."""
        self.check_task(task_id)
        return ParallelTask.track(self, task_id, future)

    def enqueue(self, task_id: str, task: object, /, *args: object, **kwargs: object) -> object:
        """Hand ``task`` (made with a ``progress_task`` decorator from
        ``progress_ui.contrib``) to its task runner as ``task_id`` of this session,
        with ``*args, **kwargs``. Returns what the runner returns (a Django
        ``TaskResult``, a Celery ``AsyncResult``). An unknown task id raises
        before anything is enqueued."""
        self.check_task(task_id)
        enqueue_progress = getattr(task, "enqueue_progress", None)
        if enqueue_progress is None:
            raise TypeError(
                f"{task!r} is not a progress task: decorate it with "
                "progress_ui.contrib.django_tasks.progress_task or "
                "progress_ui.contrib.celery.progress_task."
            )
        return enqueue_progress(self, task_id, *args, **kwargs)

    # -- reads -------------------------------------------------------------------

    def read(self, now: float | None = None) -> SessionSnapshot | None:
        """A fresh snapshot (one cache round trip), or None if the session is gone.

        Tasks whose process has stopped (see ``progress_ui.liveness``) are marked
        ERROR first; checking costs at most one more read per runner per
        ``WORKER_BEAT_INTERVAL`` in this process."""
        meta, records = store.read_all(self._id, list(self._names))
        runners = _runners(records)
        if runners and self._mark_lost(records, liveness.dead_runners(set(runners.values()))):
            meta, records = store.read_all(self._id, list(self._names))
        return self._build(meta, records, now)

    async def aread(self, now: float | None = None) -> SessionSnapshot | None:
        """Async :meth:`read`."""
        return self.snapshot_of(await self.aread_state(), now)

    async def aread_state(self) -> SessionState:
        """What :meth:`aread` builds its snapshot from (one cache round trip, and
        the liveness check of :meth:`read`); :meth:`snapshot_of` turns it into a
        snapshot at any moment, so a follower can animate without reading again."""
        state = await store.aread_all(self._id, list(self._names))
        return await self.acheck_runners(state)

    async def acheck_runners(self, state: SessionState) -> SessionState:
        """``state``, read again if some of its RUNNING tasks had lost their
        process (they are marked ERROR first). Costs no read of the session
        otherwise, and at most one liveness read per runner per
        ``WORKER_BEAT_INTERVAL`` in this process."""
        records = state[1]
        runners = _runners(records)
        if runners:
            dead = await liveness.adead_runners(set(runners.values()))
            if dead and await sync_to_async(self._mark_lost, thread_sensitive=False)(records, dead):
                return await store.aread_all(self._id, list(self._names))
        return state

    def snapshot_of(self, state: SessionState, now: float | None = None) -> SessionSnapshot | None:
        """The snapshot of a state read by :meth:`aread_state`, at ``now``."""
        return self._build(state[0], state[1], now)

    def _mark_lost(self, records: dict[str, TaskRecord], dead: set[str]) -> bool:
        """Mark ERROR the RUNNING tasks whose runner is in ``dead``; True if any."""
        message = current_settings().WORKER_LOST_MESSAGE
        lost = [t for t, runner in _runners(records).items() if runner in dead]
        marked = False
        for task_id in lost:
            logger.warning(
                "progress_ui: task %r of session %s lost its worker %s",
                task_id,
                log_id(self._id),
                records[task_id].get("runner"),
            )
            runner = records[task_id].get("runner")
            if self._end(task_id, ProgressStatus.ERROR, message, message, only_runner=runner):
                marked = True
        return marked

    def _build(
        self,
        meta: store.SessionMeta | None,
        records: dict[str, TaskRecord],
        now: float | None,
    ) -> SessionSnapshot | None:
        if meta is None:
            return None
        return build_snapshot(
            self._id,
            self._names,
            records,
            time.time() if now is None else now,
            current_settings(),
            self._meta.get("weights"),
        )

    def to_dict(self) -> SessionSnapshot:
        """The current snapshot; a vanished session reads as ``expired``."""
        return self.read() or expired_snapshot(self._id, self._names)

    def _statuses(self) -> list[ReportedStatus]:
        return [ReportedStatus(t["status"]) for t in self.to_dict()["tasks"].values()]

    @property
    def status(self) -> ProgressStatus:
        """ERROR > COMPLETE > RUNNING > PENDING (see ``records.aggregate_status``)."""
        return ProgressStatus(self.to_dict()["status"])

    @property
    def has_error(self) -> bool:
        return ReportedStatus.ERROR in self._statuses()

    @property
    def is_complete(self) -> bool:
        return all(s is ReportedStatus.COMPLETE for s in self._statuses())

    @property
    def is_running(self) -> bool:
        """True while any task is RUNNING or COMPLETING."""
        return ReportedStatus.RUNNING in self._statuses()

    @property
    def overall_percent(self) -> int:
        return self.to_dict()["overall_percent"]

    # -- streams ---------------------------------------------------------------

    def stream(self, poll_interval: float = 0.1) -> Iterator[str]:
        """NDJSON: one JSON snapshot per line, each when the state changed, as the
        original API says: until every task is complete, or up to and including
        the first snapshot with an error (or a cancelled task, or expiry).

        (The browsers' HTML stream goes on while other tasks still run after an
        error: ``snapshot.is_settled``.)"""
        items = follow_snapshots(self, poll_interval=poll_interval, until=has_ended)
        return json_lines(self._id, items)

    def astream(self, poll_interval: float = 0.1) -> AsyncIterator[str]:
        """Async :meth:`stream`."""
        items = afollow_snapshots(self, poll_interval=poll_interval, until=has_ended)
        return ajson_lines(self._id, items)

    def delete(self) -> None:
        """Remove the session from the cache now."""
        store.delete(self._id, list(self._names))
