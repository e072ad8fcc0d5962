"""Handles returned by ``ProgressSession.add_sequential`` and ``add_parallel``
(and their async twins), and :func:`calling`, the step that runs someone's code.

They drive the session through the few methods of :class:`TaskRecorder`, so this
module sits below ``session.py`` and never imports it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError, Future
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from progress_ui.core.messages import INTERRUPTED
from progress_ui.engine import store
from progress_ui.engine.plans import Op, Plan
from progress_ui.exceptions import StillRunning, TaskCancelled

P = ParamSpec("P")
R = TypeVar("R")
V = TypeVar("V")


def calling(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Op[Any]:
    """The step of running someone's code, ``func(*args, **kwargs)``, a plain or
    a coroutine function: awaited under ``arun``; under ``run`` a coroutine
    function runs to its end in an event loop of its own (:func:`run_coroutine`),
    so a blocking runner (a thread, a Celery or Django Tasks worker) runs
    ``async def`` jobs too."""

    def call() -> Any:
        result = func(*args, **kwargs)
        return run_coroutine(result) if inspect.isawaitable(result) else result

    async def acall() -> Any:
        result = func(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return Op(call, acall)


def run_coroutine(awaitable: Awaitable[V]) -> V:
    """Run ``awaitable`` to its end in a new event loop of this thread (which must
    have none running), closing the store's clients of that loop before it goes."""

    async def main() -> V:
        try:
            return await awaitable
        finally:
            await store.backend().aclose_loop_clients()

    return asyncio.run(main())


class TaskRecorder(Protocol):
    """What a handle needs of its session (``ProgressSession`` is one): the plans
    of its writes, and the blocking calls a future's callback makes."""

    @property
    def session_id(self) -> str: ...

    def plan_start(self, task_id: str) -> Plan[None]: ...

    def plan_complete(self, task_id: str, message: str | None = None) -> Plan[None]: ...

    def plan_error(self, task_id: str, message: str | None = None) -> Plan[None]: ...

    def plan_fail(self, task_id: str, exc: BaseException) -> Plan[None]: ...

    def plan_detach(self, task_id: str) -> Plan[None]: ...

    def complete(
        self,
        task_id: str,
        message: str | None = None,
        *,
        result_url: str | None = None,
        result_label: str = "",
    ) -> None: ...

    def fail(self, task_id: str, exc: BaseException) -> None: ...

    def cancel(self, task_id: str | None = None, message: str | None = None) -> list[str]: ...


class SequentialTask(Generic[R]):
    """A callable run to completion inside a session. ``.result`` returns its value
    or re-raises the exception it raised."""

    def __init__(self, session: TaskRecorder, task_id: str) -> None:
        self.session = session
        self.task_id = task_id
        self._value: R | None = None
        self._exception: BaseException | None = None

    @classmethod
    def plan(cls, session: TaskRecorder, task_id: str, work: Op[R]) -> Plan[SequentialTask[R]]:
        """Run the step ``work`` (made by :func:`calling`) as the task."""
        task: SequentialTask[R] = cls(session, task_id)
        try:
            yield from session.plan_start(task_id)
        except TaskCancelled as exc:
            # Cancelled before it ran (a queued job): the work never runs.
            task._exception = exc
            return task
        try:
            task._value = yield work
        except TaskCancelled as exc:
            # Stopped at a step after a cancel: the task already shows it.
            task._exception = exc
            return task
        except StillRunning:
            yield from session.plan_detach(task_id)  # a retry runs it again, maybe elsewhere
            raise
        except Exception as exc:
            task._exception = exc
            yield from session.plan_fail(task_id, exc)
            return task
        except BaseException:
            # KeyboardInterrupt, SystemExit, an asyncio cancel...: leave a
            # terminal state, then let it go.
            yield from session.plan_error(task_id, INTERRUPTED)
            raise
        yield from session.plan_complete(task_id)
        return task

    @property
    def exception(self) -> BaseException | None:
        return self._exception

    @property
    def result(self) -> R:
        if self._exception is not None:
            raise self._exception
        return self._value  # type: ignore[return-value]


class ParallelTask(Generic[R]):
    """A ``concurrent.futures.Future`` tracked by a session. ``.result`` proxies
    ``future.result``. Completion is recorded by ``future.add_done_callback``."""

    def __init__(self, session: TaskRecorder, task_id: str, future: Future[R]) -> None:
        self.session = session
        self.task_id = task_id
        self.future = future

    @classmethod
    def plan(cls, session: TaskRecorder, task_id: str, future: Future[R]) -> Plan[ParallelTask[R]]:
        task = cls(session, task_id, future)
        try:
            yield from session.plan_start(task_id)
        except TaskCancelled:
            future.cancel()  # stops it only if it has not started yet
            return task
        future.add_done_callback(task._on_done)
        return task

    def _on_done(self, future: Future[R]) -> None:
        # Runs in the thread that resolved the future (or here, if already done).
        try:
            exc = future.exception()
        except CancelledError:
            self.session.cancel(self.task_id)
            return
        if isinstance(exc, TaskCancelled):
            return  # the task already shows it
        if exc is None:
            self.session.complete(self.task_id)
        else:
            self.session.fail(self.task_id, exc)

    @property
    def result(self) -> R:
        """The future's value (waiting for it), or its exception raised."""
        return self.future.result()

    def wait(self, timeout: float | None = None) -> R:
        """``future.result(timeout)``."""
        return self.future.result(timeout)
