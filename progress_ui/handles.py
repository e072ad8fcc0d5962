"""Handles returned by ``ProgressSession.add_sequential`` and ``add_parallel``.

They drive the session through the few methods of :class:`TaskRecorder`, so this
module sits below ``session.py`` and never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Generic, ParamSpec, Protocol, TypeVar

from .exceptions import StillRunning, TaskCancelled

P = ParamSpec("P")
R = TypeVar("R")


class TaskRecorder(Protocol):
    """What a handle needs of its session (``ProgressSession`` is one)."""

    @property
    def session_id(self) -> str: ...

    def start(self, task_id: str) -> None: ...

    def complete(self, task_id: str, message: str | None = None) -> None: ...

    def error(self, task_id: str, message: str | None = None) -> None: ...

    def fail(self, task_id: str, exc: BaseException) -> None: ...

    def cancel(self, task_id: str | None = None, message: str | None = None) -> list[str]: ...

    def detach(self, task_id: str) -> None: ...


class SequentialTask(Generic[R]):
    """A callable run to completion inside a session. ``.result`` returns its value
    or re-raises the exception it raised."""

    def __init__(self, session: TaskRecorder, task_id: str) -> None:
        self.session = session
        self.task_id = task_id
        self._value: R | None = None
        self._exception: BaseException | None = None

    @classmethod
    def run(
        cls,
        session: TaskRecorder,
        task_id: str,
        func: Callable[P, R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> SequentialTask[R]:
        task: SequentialTask[R] = cls(session, task_id)
        try:
            session.start(task_id)
        except TaskCancelled as exc:
            # Cancelled before it ran (a queued job): the work never runs.
            task._exception = exc
            return task
        try:
            task._value = func(*args, **kwargs)
        except TaskCancelled as exc:
            # Stopped at a step after a cancel: the task already shows it.
            task._exception = exc
            return task
        except StillRunning:
            session.detach(task_id)  # a retry runs it again, maybe elsewhere
            raise
        except Exception as exc:
            task._exception = exc
            session.fail(task_id, exc)
            return task
        except BaseException:
            # KeyboardInterrupt, SystemExit...: leave a terminal state, then let it go.
            session.error(task_id, "Interrupted.")
            raise
        session.complete(task_id)
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
    def track(cls, session: TaskRecorder, task_id: str, future: Future[R]) -> ParallelTask[R]:
        task = cls(session, task_id, future)
        try:
            session.start(task_id)
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
