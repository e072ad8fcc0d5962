"""Coalescing ``update()``: a job may report as often as it likes, the cache sees
at most one progress write per task every ``UPDATE_WRITE_INTERVAL``.

A job that calls ``update()`` after every item of a fast loop (10,000 times a
second, say) would spend most of its time on cache round trips (about 200 us
each on Redis) and wake its viewers far more often than a browser can show.
So each process keeps, per task, the update fields not stored yet (the newest
value of each: ``current``, ``message``...) and :func:`offer` decides, for each
``update()``:

- the first update after a quiet ``UPDATE_WRITE_INTERVAL`` is stored at once
  (a job that reports now and then sees no difference);
- one that comes sooner is held: its fields replace the held ones and the call
  returns without I/O;
- the held fields are stored by the first ``update()`` once the interval has
  passed, else by this process's flush thread when it passes (a job that
  reports, then works silently for a minute, still shows its last report within
  the interval), by a transition of the task (``complete()``, ``error()``,
  ``cancel()``, ``start()``, ``detach()`` take them into their own write: see
  :func:`take`), and before any read of the session in this process (a
  process reads its own writes: :func:`flush`, :func:`aflush`).

A held update cannot raise: what its storing raises (``TaskCancelled`` when the
task was cancelled meanwhile, ``CacheUnavailable`` under ``STRICT_WRITES``) is
raised by the task's next ``update()``. So a job cancelled by another process
stops at most one interval later than it would without coalescing; one cancelled
by this very process stops at its next ``update()`` (:func:`cancelled`).

Only one store of a task's held fields runs at a time (``flushing``): fields
given meanwhile are held for the next one, so writes never overtake each other.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any, Protocol

from progress_ui.conf import current as current_settings
from progress_ui.engine.plans import Plan, arun, run

#: Update fields by name (``current``, ``total``, ``percent``, ``step``,
#: ``steps``, ``message``, ``step_name``): the newest value given of each.
Fields = dict[str, Any]
#: (session id, task id).
Key = tuple[str, str]

#: Seconds the flush thread waits for more work before it ends.
_IDLE_EXIT = 5.0
#: Tasks remembered as cancelled by this process (the oldest are forgotten).
_MAX_CANCELLED = 10_000


class HeldWriter(Protocol):
    """What storing held fields needs of a task's writer (``TaskWriter``)."""

    stored_at: dict[str, float]

    def store_update(self, task_id: str, fields: Fields) -> Plan[bool]: ...


class _Held:
    """The fields of one task not stored yet."""

    __slots__ = ("due", "error", "fields", "flushing", "in_flight", "writer")

    def __init__(self, writer: HeldWriter, due: float) -> None:
        self.writer = writer
        self.fields: Fields = {}
        #: When the held fields must be stored (monotonic).
        self.due = due
        #: True while a store of this task's fields runs (their copy: ``in_flight``).
        self.flushing = False
        self.in_flight: Fields = {}
        #: What a store of held fields raised, for the task's next ``update()``.
        self.error: BaseException | None = None


class _Registry:
    """This process's held updates and the thread that stores them when due."""

    def __init__(self) -> None:
        self.lock = threading.Condition(threading.Lock())
        self.held: dict[Key, _Held] = {}
        self.cancelled: collections.OrderedDict[Key, None] = collections.OrderedDict()
        self.thread: threading.Thread | None = None

    # -- the writer's side ---------------------------------------------------------

    def offer(
        self, writer: HeldWriter, session_id: str, task_id: str, fields: Fields
    ) -> Fields | None:
        interval = current_settings().UPDATE_WRITE_INTERVAL
        key = (session_id, task_id)
        with self.lock:
            entry = self.held.get(key)
            if entry is not None and entry.error is not None:
                error, entry.error = entry.error, None
                if not entry.fields and not entry.flushing:
                    del self.held[key]
                raise error
            now = time.monotonic()
            if interval <= 0 or key in self.cancelled:
                # No coalescing; or cancelled here: the write finds it and raises.
                if entry is not None and not entry.flushing:
                    del self.held[key]
                    fields = {**entry.fields, **fields}
                writer.stored_at[task_id] = now
                return fields
            if entry is None:
                last = writer.stored_at.get(task_id)
                if last is None or now - last >= interval:
                    writer.stored_at[task_id] = now
                    return fields
                entry = self.held[key] = _Held(writer, last + interval)
                self._ensure_thread()
                self.lock.notify()
            entry.fields.update(fields)
            if entry.flushing or now < entry.due:
                return None
            # Due: the caller stores everything held, now.
            del self.held[key]
            writer.stored_at[task_id] = now
            return entry.fields

    def take(self, session_id: str, task_id: str) -> Fields:
        """The held fields of a task (and those being stored), for a transition
        that writes them itself; none are held for it any more."""
        with self.lock:
            entry = self.held.pop((session_id, task_id), None)
            if entry is None:
                return {}
            return {**entry.in_flight, **entry.fields}

    def mark_cancelled(self, session_id: str, task_id: str) -> None:
        with self.lock:
            self.cancelled[(session_id, task_id)] = None
            while len(self.cancelled) > _MAX_CANCELLED:
                self.cancelled.popitem(last=False)

    # -- storing held fields -------------------------------------------------------

    def _begin(self, key: Key, entry: _Held) -> Fields | None:
        """Called with the lock held: the fields to store, or None if another
        store of them runs."""
        if entry.flushing or not entry.fields or self.held.get(key) is not entry:
            return None
        entry.flushing = True
        entry.in_flight, entry.fields = entry.fields, {}
        return entry.in_flight

    def _end(self, key: Key, entry: _Held, error: BaseException | None) -> None:
        with self.lock:
            entry.flushing = False
            entry.in_flight = {}
            entry.writer.stored_at[key[1]] = now = time.monotonic()
            entry.due = now + current_settings().UPDATE_WRITE_INTERVAL
            if error is not None:
                entry.error = error
            if self.held.get(key) is not entry:
                if error is not None and key not in self.held:
                    self.held[key] = entry  # taken meanwhile: the error still counts
                return
            if not entry.fields and entry.error is None:
                del self.held[key]
            else:
                self.lock.notify()

    def _due_for(self, session_id: str) -> list[tuple[Key, _Held, Fields]]:
        with self.lock:
            found = []
            for key, entry in list(self.held.items()):
                if key[0] == session_id and (fields := self._begin(key, entry)) is not None:
                    found.append((key, entry, fields))
            return found

    def flush(self, session_id: str) -> None:
        for key, entry, fields in self._due_for(session_id):
            self._end(key, entry, _store(entry, key, fields))

    async def aflush(self, session_id: str) -> None:
        for key, entry, fields in self._due_for(session_id):
            try:
                await arun(entry.writer.store_update(key[1], fields))
            except Exception as exc:
                self._end(key, entry, exc)
            else:
                self._end(key, entry, None)

    # -- the flush thread ----------------------------------------------------------

    def _ensure_thread(self) -> None:
        # Called with the lock held.
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._run, name="progress_ui held updates", daemon=True
            )
            self.thread.start()

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self.lock:
                due: list[tuple[Key, _Held, Fields]] = []
                while not due:
                    now = time.monotonic()
                    waiting = [e.due for e in self.held.values() if e.fields and not e.flushing]
                    if not waiting and now - idle_since >= _IDLE_EXIT:
                        self.thread = None
                        return
                    for key, entry in list(self.held.items()):
                        if entry.due <= now and (fields := self._begin(key, entry)) is not None:
                            due.append((key, entry, fields))
                    if not due:
                        wait = min(waiting) - now if waiting else _IDLE_EXIT
                        self.lock.wait(max(0.001, wait))
            for key, entry, fields in due:
                self._end(key, entry, _store(entry, key, fields))
            idle_since = time.monotonic()


def _store(entry: _Held, key: Key, fields: Fields) -> BaseException | None:
    """Store held ``fields`` with blocking I/O; what it raised (the task's next
    ``update()`` raises it)."""
    try:
        run(entry.writer.store_update(key[1], fields))
    except Exception as exc:
        return exc
    return None


_registry = _Registry()


def _forked() -> None:
    # A forked child (a prefork worker) holds nothing of its parent's, and has
    # no flush thread. (Reset at the fork, not checked per call: getpid() is a
    # system call, and update() may be called 10,000 times a second.)
    global _registry
    _registry = _Registry()


os.register_at_fork(after_in_child=_forked)


def _process() -> _Registry:
    return _registry


def offer(writer: HeldWriter, session_id: str, task_id: str, fields: Fields) -> Fields | None:
    """An ``update()`` of ``fields``: the fields to store now (with those held
    before), or None when they are held (see the module docstring). Raises what
    storing this task's held fields raised since its last ``update()``."""
    return _process().offer(writer, session_id, task_id, fields)


def take(session_id: str, task_id: str) -> Fields:
    """The fields held for a task, which the caller (a transition) stores itself."""
    return _process().take(session_id, task_id)


def mark_cancelled(session_id: str, task_id: str) -> None:
    """This process cancelled the task: its next ``update()`` is stored at once,
    and so raises ``TaskCancelled`` as it would have without coalescing."""
    _process().mark_cancelled(session_id, task_id)


def flush(session_id: str) -> None:
    """Store the held updates of ``session_id`` now (before this process reads it)."""
    registry = _process()
    if registry.held:
        registry.flush(session_id)


async def aflush(session_id: str) -> None:
    """Async :func:`flush`."""
    registry = _process()
    if registry.held:
        await registry.aflush(session_id)


def held_tasks() -> set[Key]:
    """The (session id, task id) pairs with fields held now (for tests)."""
    registry = _process()
    with registry.lock:
        return {key for key, entry in registry.held.items() if entry.fields}
