"""The write and lifecycle calls of a session, blocking and async.

Each call is written once, as a plan (``progress_ui.engine.plans``): what it
checks, which writes it makes and how it meets a cache that cannot be reached.
``start()`` runs the plan with blocking I/O and ``astart()`` awaits it, on the
Redis cache through redis-py's asyncio client (never a thread), elsewhere
through Django's async cache API; the ``plan_*`` methods give the plans
themselves to code that composes them (the task handles, a child session's
roll-up). :class:`SessionWrites` is the part of ``ProgressSession`` that holds
them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sized
from typing import TypeVar

from progress_ui.conf import current as current_settings
from progress_ui.core.status import ProgressStatus
from progress_ui.core.validation import check_amount, log_id
from progress_ui.engine import store
from progress_ui.engine.held import Fields
from progress_ui.engine.plans import Plan, arun, io, run
from progress_ui.engine.writes import TaskWriter
from progress_ui.exceptions import ProgressError, TaskCancelled, UnknownTaskError, user_message
from progress_ui.signals import task_cancelled

logger = logging.getLogger("progress_ui")

T = TypeVar("T")


class IterationPace:
    """When ``iterate()`` writes its count: after an item, at most once per
    ``ITERATE_WRITE_INTERVAL``; at the end, the last count if it was not written."""

    def __init__(self, iterable: object, total: int | None) -> None:
        if total is None and isinstance(iterable, Sized):
            total = len(iterable)
        self.total = total
        self.interval = current_settings().ITERATE_WRITE_INTERVAL
        self.count = 0
        self.written = 0
        self.last_write = time.monotonic()

    def step(self) -> int | None:
        """One more item: the count to write now, or None."""
        self.count += 1
        if time.monotonic() - self.last_write < self.interval:
            return None
        self.written, self.last_write = self.count, time.monotonic()
        return self.count

    def rest(self) -> int | None:
        """At the end: the count still to write, or None."""
        return None if self.count == self.written else self.count


async def _items(iterable: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(iterable, AsyncIterable):
        async for item in iterable:
            yield item
    else:
        for item in iterable:
            yield item


class SessionWrites:
    """The writes of ``ProgressSession``: each call, its async twin (``a``
    prefix, as Django's) and its plan (``plan_`` prefix).

    A cache that cannot be reached loses a write (a rate-limited warning; it
    raises ``CacheUnavailable`` under ``STRICT_WRITES``), so progress never
    fails the job it reports on; an ending is kept and stored once it is back."""

    _id: str
    _names: dict[str, str]
    _writer: TaskWriter

    def check_task(self, task_id: str) -> None:
        """Raise ``UnknownTaskError`` (naming the valid ids) unless ``task_id`` is
        a task of this session."""
        if task_id not in self._names:
            raise UnknownTaskError(
                f"Unknown task {task_id!r}; this session has: {', '.join(self._names)}"
            )

    # -- start ------------------------------------------------------------------

    def plan_start(self, task_id: str) -> Plan[None]:
        self.check_task(task_id)
        yield from self._writer.start(task_id)

    def start(self, task_id: str) -> None:
        """Mark a task RUNNING in this process; its simulated percent starts moving.
        Starting a running task only records that this process now runs it;
        starting a finished one raises ValueError, a cancelled one TaskCancelled."""
        run(self.plan_start(task_id))

    async def astart(self, task_id: str) -> None:
        """Async :meth:`start`."""
        await arun(self.plan_start(task_id))

    # -- complete, error, fail ---------------------------------------------------

    def plan_complete(
        self,
        task_id: str,
        message: str | None = None,
        *,
        result_url: str | None = None,
        result_label: str = "",
    ) -> Plan[None]:
        self.check_task(task_id)
        result = None if result_url is None else (result_url, result_label)
        yield from self._writer.complete(task_id, message, result)

    def complete(
        self,
        task_id: str,
        message: str | None = None,
        *,
        result_url: str | None = None,
        result_label: str = "",
    ) -> None:
        """Mark a task COMPLETING: its percent animates to 100 over
        ``COMPLETING_DURATION`` seconds, then it reads as COMPLETE. A task that
        was never started completes from 0. Completing twice does nothing.

        ``result_url`` (a path, or an http(s) URL; anything else is a
        ``ValueError``) and ``result_label`` are a link the page shows once the
        task is complete, a report to download for example, and carries in its
        ``progress:complete`` event."""
        run(self.plan_complete(task_id, message, result_url=result_url, result_label=result_label))

    async def acomplete(
        self,
        task_id: str,
        message: str | None = None,
        *,
        result_url: str | None = None,
        result_label: str = "",
    ) -> None:
        """Async :meth:`complete`."""
        await arun(
            self.plan_complete(task_id, message, result_url=result_url, result_label=result_label)
        )

    def plan_error(self, task_id: str, message: str | None = None) -> Plan[None]:
        self.check_task(task_id)
        text = current_settings().GENERIC_ERROR_MESSAGE if message is None else message
        yield from self._writer.finish(task_id, ProgressStatus.ERROR, text)

    def error(self, task_id: str, message: str | None = None) -> None:
        """Mark a task ERROR with a message safe to show to users. The bar stays
        where it was. A finished task is left as it is."""
        run(self.plan_error(task_id, message))

    async def aerror(self, task_id: str, message: str | None = None) -> None:
        """Async :meth:`error`."""
        await arun(self.plan_error(task_id, message))

    def plan_fail(self, task_id: str, exc: BaseException) -> Plan[None]:
        conf = current_settings()
        if not isinstance(exc, ProgressError):
            logger.error(
                "progress_ui task %r of session %s failed",
                task_id,
                log_id(self._id),
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        limit = self._writer.message_limit()
        message = user_message(exc, generic=conf.GENERIC_ERROR_MESSAGE, max_length=limit)
        yield from self.plan_error(task_id, message)

    def fail(self, task_id: str, exc: BaseException) -> None:
        """Mark a task ERROR because of ``exc``: a ``ProgressError``'s text is shown,
        anything else shows the generic message and is logged with its traceback."""
        run(self.plan_fail(task_id, exc))

    async def afail(self, task_id: str, exc: BaseException) -> None:
        """Async :meth:`fail`."""
        await arun(self.plan_fail(task_id, exc))

    # -- cancel, detach, check_cancelled -----------------------------------------

    def plan_cancel(
        self, task_id: str | None = None, message: str | None = None
    ) -> Plan[list[str]]:
        task_ids = list(self._names) if task_id is None else [task_id]
        for t in task_ids:
            self.check_task(t)
        text = current_settings().CANCELLED_MESSAGE if message is None else message
        cancelled = []
        for t in task_ids:
            if (yield from self._writer.finish(t, ProgressStatus.CANCELLED, text)):
                cancelled.append(t)
        for t in cancelled:
            signal = task_cancelled
            yield io(signal.send, signal.asend, sender=type(self), session=self, task_id=t)
        return cancelled

    def cancel(self, task_id: str | None = None, message: str | None = None) -> list[str]:
        """Cancel one task, or every unfinished task of the session. Cooperative:
        the work raises ``TaskCancelled`` at its next ``update()``, ``iterate()``
        step or ``check_cancelled()``, and work not yet started never runs.
        Returns the ids of the tasks this call cancelled (finished ones stay as
        they are); ``task_cancelled`` is sent for each (``asend`` from
        :meth:`acancel`)."""
        return run(self.plan_cancel(task_id, message))

    async def acancel(self, task_id: str | None = None, message: str | None = None) -> list[str]:
        """Async :meth:`cancel`."""
        return await arun(self.plan_cancel(task_id, message))

    def plan_detach(self, task_id: str) -> Plan[None]:
        self.check_task(task_id)
        yield from self._writer.detach(task_id)

    def detach(self, task_id: str) -> None:
        """This process stops running the task without finishing it (a retry will
        run it again): it stays RUNNING, and its liveness no longer depends on
        this process. Until the retry starts, only the session's TTL ends it."""
        run(self.plan_detach(task_id))

    async def adetach(self, task_id: str) -> None:
        """Async :meth:`detach`."""
        await arun(self.plan_detach(task_id))

    def plan_check_cancelled(self, task_id: str) -> Plan[None]:
        self.check_task(task_id)
        try:
            record = yield io(store.read_task, store.aread_task, self._id, task_id)
        except store.CacheUnavailable as exc:
            self._writer.lost_write(exc)
            return
        if record is not None and record["status"] == ProgressStatus.CANCELLED:
            raise TaskCancelled(f"Task {task_id!r} was cancelled.")

    def check_cancelled(self, task_id: str) -> None:
        """Raise ``TaskCancelled`` if the task was cancelled (one cache read).
        A cache that cannot be reached reads as not cancelled."""
        run(self.plan_check_cancelled(task_id))

    async def acheck_cancelled(self, task_id: str) -> None:
        """Async :meth:`check_cancelled`."""
        await arun(self.plan_check_cancelled(task_id))

    # -- update -------------------------------------------------------------------

    def plan_update(
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
    ) -> Plan[None]:
        fields = self._offer_update(
            task_id, current, total, percent, message, step, steps, step_name
        )
        if fields is not None:
            yield from self._writer.store_update(task_id, fields)

    def _offer_update(
        self,
        task_id: str,
        current: float | None,
        total: float | None,
        percent: float | None,
        message: str | None,
        step: int | None,
        steps: int | None,
        step_name: str | None,
    ) -> Fields | None:
        """An update checked and offered to ``engine.held``: the fields to store
        now, or None when they are held. No I/O, so a job may call ``update()``
        after every item of a fast loop: a held call costs a few microseconds."""
        self.check_task(task_id)
        return self._writer.offer_update(
            task_id,
            current=check_amount("current", current),
            total=check_amount("total", total),
            percent=check_amount("percent", percent),
            step=check_amount("step", step),
            steps=check_amount("steps", steps),
            message=message,
            step_name=step_name,
        )

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
        cancelled.

        Call it as often as you like: a call that comes less than
        ``UPDATE_WRITE_INTERVAL`` after the task's last stored update is held
        (no I/O), and the newest values are stored once the interval has passed
        (by the next call, or a thread of this process), or by the task's ending.
        A cancel made by another process is then raised by the first call that
        stores, at most one interval later."""
        # Not run(self.plan_update(...)): a held call, the common one in a fast
        # loop, then builds no plan.
        fields = self._offer_update(
            task_id, current, total, percent, message, step, steps, step_name
        )
        if fields is not None:
            run(self._writer.store_update(task_id, fields))

    async def aupdate(
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
        """Async :meth:`update` (a held call awaits nothing)."""
        fields = self._offer_update(
            task_id, current, total, percent, message, step, steps, step_name
        )
        if fields is not None:
            await arun(self._writer.store_update(task_id, fields))

    # -- iterate --------------------------------------------------------------------

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
        pace = IterationPace(iterable, total)
        self.update(task_id, current=0, total=pace.total, message=message)
        try:
            for item in iterable:
                yield item
                if (count := pace.step()) is not None:
                    self.update(task_id, current=count)
        finally:
            if (count := pace.rest()) is not None:
                self.update(task_id, current=count)
        if complete:
            self.complete(task_id)

    async def aiterate(
        self,
        task_id: str,
        iterable: Iterable[T] | AsyncIterable[T],
        *,
        total: int | None = None,
        message: str | None = None,
        complete: bool = True,
    ) -> AsyncIterator[T]:
        """Async :meth:`iterate`, over an iterable or an async iterable. The last
        count is written when the loop ends; after a ``break``, when the
        generator is closed (``contextlib.aclosing`` closes it at once)."""
        self.check_task(task_id)
        pace = IterationPace(iterable, total)
        await self.aupdate(task_id, current=0, total=pace.total, message=message)
        try:
            async for item in _items(iterable):
                yield item
                if (count := pace.step()) is not None:
                    await self.aupdate(task_id, current=count)
        finally:
            if (count := pace.rest()) is not None:
                await self.aupdate(task_id, current=count)
        if complete:
            await self.acomplete(task_id)
