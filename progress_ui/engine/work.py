"""Running one piece of work as one task of a session, in whatever process runs it.

Task runners (``progress_ui.contrib.django_tasks``, ``progress_ui.contrib.celery``,
the mixins' thread pool) hand the work a :class:`TaskProgress` and call
:func:`run_task`, which records start, completion and failure. Only the session
id and the task id cross the process boundary: both are plain strings that
every task queue can serialise.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from progress_ui.core import messages
from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.core.status import ReportedStatus
from progress_ui.core.validation import log_id
from progress_ui.engine.handles import SequentialTask, calling
from progress_ui.engine.plans import Plan, arun, io, run
from progress_ui.engine.session import ProgressSession, SessionReference
from progress_ui.engine.store import CacheUnavailable
from progress_ui.exceptions import StillRunning, TaskCancelled

logger = logging.getLogger("progress_ui")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class TaskProgress:
    """What a piece of work sees of its task: report progress to it.

    ``session`` is None when the session has expired or was deleted before the
    work ran: the work still runs, and the reports go nowhere.
    """

    def __init__(self, session: ProgressSession | None, task_id: str) -> None:
        self.session = session
        self.task_id = task_id

    @property
    def session_id(self) -> str | None:
        return None if self.session is None else self.session.session_id

    def update(
        self,
        *,
        current: float | None = None,
        total: float | None = None,
        percent: float | None = None,
        message: str | None = None,
    ) -> None:
        """``ProgressSession.update`` for this task."""
        if self.session is not None:
            self.session.update(
                self.task_id, current=current, total=total, percent=percent, message=message
            )

    async def aupdate(
        self,
        *,
        current: float | None = None,
        total: float | None = None,
        percent: float | None = None,
        message: str | None = None,
    ) -> None:
        """Async :meth:`update`."""
        if self.session is not None:
            await self.session.aupdate(
                self.task_id, current=current, total=total, percent=percent, message=message
            )

    def iterate(
        self, iterable: Iterable[T], *, total: int | None = None, message: str | None = None
    ) -> Iterator[T]:
        """``ProgressSession.iterate`` for this task; the task completes when the
        work returns, not when the iterable ends."""
        if self.session is None:
            return iter(iterable)
        return self.session.iterate(
            self.task_id, iterable, total=total, message=message, complete=False
        )

    def aiterate(
        self,
        iterable: Iterable[T] | AsyncIterable[T],
        *,
        total: int | None = None,
        message: str | None = None,
    ) -> AsyncIterator[T]:
        """Async :meth:`iterate`, over an iterable or an async iterable."""
        if self.session is None:
            return _nowhere(iterable)
        return self.session.aiterate(
            self.task_id, iterable, total=total, message=message, complete=False
        )

    def complete(
        self, message: str | None = None, *, result_url: str | None = None, result_label: str = ""
    ) -> None:
        """``ProgressSession.complete`` for this task, before the work returns: to
        hand the page a result link (``result_url``, ``result_label``), such as the
        report the work has just written. The runner's own completion when the
        work returns then changes nothing."""
        if self.session is not None:
            self.session.complete(
                self.task_id, message, result_url=result_url, result_label=result_label
            )

    async def acomplete(
        self, message: str | None = None, *, result_url: str | None = None, result_label: str = ""
    ) -> None:
        """Async :meth:`complete`."""
        if self.session is not None:
            await self.session.acomplete(
                self.task_id, message, result_url=result_url, result_label=result_label
            )

    def check_cancelled(self) -> None:
        """Raise ``TaskCancelled`` if the task was cancelled (one cache read): call
        it between steps that do not report progress."""
        if self.session is not None:
            self.session.check_cancelled(self.task_id)

    async def acheck_cancelled(self) -> None:
        """Async :meth:`check_cancelled`."""
        if self.session is not None:
            await self.session.acheck_cancelled(self.task_id)

    def __repr__(self) -> str:
        return f"<TaskProgress {self.session_id}/{self.task_id}>"


async def _nowhere(iterable: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """The items of ``iterable``, reported nowhere (the session is gone)."""
    if isinstance(iterable, AsyncIterable):
        async for item in iterable:
            yield item
    else:
        for item in iterable:
            yield item


def run_task(
    session_id: str,
    task_id: str,
    func: Callable[Concatenate[TaskProgress, P], R],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Run ``func(progress, *args, **kwargs)`` as ``task_id`` of the session
    ``session_id``: RUNNING, then COMPLETING on return, or ERROR on an exception
    (a ``ProgressError``'s text is shown, anything else the generic message),
    which is re-raised so the task runner records the failure too. ``func`` may
    raise ``StillRunning(exc)`` to end this attempt only (a runner's retry): the
    task stays RUNNING and ``exc`` is raised. A cancelled
    task raises ``TaskCancelled`` without running ``func`` (or at its next step).
    ``func`` may be an ``async def`` function: it runs in an event loop of its own.

    When the cache cannot be reached, the work still runs, without progress."""
    return run(_task_plan(session_id, task_id, func, args, kwargs))  # type: ignore[no-any-return]


async def arun_task(
    session_id: str,
    task_id: str,
    func: Callable[Concatenate[TaskProgress, P], Any],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> Any:
    """Async :func:`run_task`: ``func`` is awaited when it is a coroutine function."""
    return await arun(_task_plan(session_id, task_id, func, args, kwargs))


def _task_plan(
    session_id: str,
    task_id: str,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Plan[Any]:
    try:
        session = yield io(ProgressSession.get, ProgressSession.aget, session_id)
    except CacheUnavailable:
        logger.warning(
            "progress_ui: session %s unreadable; running without progress", log_id(session_id)
        )
        session = None
    progress = TaskProgress(session, task_id)
    try:
        if session is None:
            return (yield calling(func, progress, *args, **kwargs))
        work = calling(func, progress, *args, **kwargs)
        return (yield from SequentialTask.plan(session, task_id, work)).result
    except StillRunning as still:
        kept = still.exc
    # Raised outside the handler, so the exception keeps its own cause and context.
    raise kept


def attempt_guarded(
    call: Callable[[], R | Awaitable[R]], on_error: Callable[[Exception], None]
) -> R | Awaitable[R]:
    """``call()``, a runner's attempt at task work, with ``on_error(exc)`` run on
    any exception before it propagates; ``on_error`` may raise ``StillRunning``
    instead (the queue runs the task again). The work may be ``async def``: its
    exceptions surface when :func:`run_task` awaits the result, so the same
    ``on_error`` is applied there, in a worker thread (it may store progress
    with blocking calls, which the running loop would refuse on some caches)."""
    try:
        result = call()
    except Exception as exc:
        on_error(exc)
        raise
    if inspect.isawaitable(result):
        return _guarded(result, on_error)
    return result


async def _guarded(result: Awaitable[R], on_error: Callable[[Exception], None]) -> R:
    try:
        return await result
    except Exception as exc:
        await asyncio.to_thread(on_error, exc)
        raise


#: A job: ``job(session, **kwargs)`` runs the work of a whole session.
Job = Callable[..., object]


def job_path(job: Job | str) -> str:
    """The dotted path a worker imports ``job`` by; it must be a module-level
    function (a path given as such must import here)."""
    if isinstance(job, str):
        try:
            found = import_string(job)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"The progress job {job!r} cannot be imported: {exc}"
            ) from exc
        if not callable(found):
            raise ImproperlyConfigured(f"The progress job {job!r} is not a function: {found!r}")
        return job
    path = f"{job.__module__}.{job.__qualname__}"
    try:
        found = import_string(path)
    except ImportError:
        found = None
    if found is not job:
        raise ImproperlyConfigured(
            f"{job!r} cannot be imported as {path!r}: a progress job must be a "
            "module-level function, so that a worker process can import it."
        )
    return path


#: What :func:`run_job` tells its task runner: the job ran to its end, or a cancel
#: stopped it (or left nothing to run). A runner records a cancel in its queue's
#: own terms (Celery: REVOKED; Django Tasks, which has no such state: a success
#: whose return value says ``"cancelled"``).
JobOutcome = Literal["complete", "cancelled"]

#: The message of a job's unfinished tasks when its process is told to stop at
#: once (``SystemExit``, ``KeyboardInterrupt``: a worker's forced shutdown).
INTERRUPTED_MESSAGE = messages.INTERRUPTED


def run_job(reference: SessionReference, job: str, kwargs: dict[str, Any]) -> JobOutcome:
    """Run the job at dotted path ``job`` as ``job(session, **kwargs)``, in whatever
    process a task runner picked; ``reference`` is ``session.to_reference()``, so
    the job starts without reading the cache (and runs while it is down). An
    ``async def`` job runs in an event loop of its own (:func:`arun_job` awaits
    it in the caller's loop).

    Whatever happens, the bar and the job's queue agree:

    - a job that raises (a ``ProgressError`` included), or that this process
      cannot import (web and worker on different code), fails its unfinished
      tasks (a ``ProgressError``'s text is shown) and the exception is re-raised,
      so the queue records a failure too;
    - ``SystemExit`` or ``KeyboardInterrupt`` (a worker's forced shutdown) marks
      them ERROR "Interrupted." at once, then propagates;
    - a job stopped by a cancel (of any of its tasks: the tasks it had not
      reached are cancelled too), or a session with nothing left to run, returns
      ``"cancelled"`` when a task was cancelled (``"complete"`` otherwise)."""
    return run(_job_plan(reference, job, kwargs))


async def arun_job(reference: SessionReference, job: str, kwargs: dict[str, Any]) -> JobOutcome:
    """Async :func:`run_job`: an ``async def`` job is awaited in the running loop
    (a plain one is called there, blocking it while it runs)."""
    return await arun(_job_plan(reference, job, kwargs))


def _job_plan(reference: SessionReference, job: str, kwargs: dict[str, Any]) -> Plan[JobOutcome]:
    session = ProgressSession.from_reference(reference)
    session_id = session.session_id
    states = yield from _states(session)
    if states is not None and all(status.is_final for status in states.values()):
        logger.info("progress_ui: nothing left to run in session %s (%s)", log_id(session_id), job)
        cancelled = ReportedStatus.CANCELLED in states.values()
        return "cancelled" if cancelled else "complete"
    try:
        work = import_string(job)
    except ImportError as exc:
        logger.error(
            "progress_ui: job %s of session %s cannot be imported here (does this worker "
            "run the same code as the web process?): %s",
            job,
            log_id(session_id),
            exc,
        )
        for task_id in (yield from _unfinished(session)):
            yield from session.plan_error(task_id)
        raise
    try:
        yield calling(work, session, **kwargs)
    except TaskCancelled:
        logger.info(
            "progress_ui: job %s of session %s stopped after a cancel", job, log_id(session_id)
        )
        # The job is over: the tasks it had not reached will not run either.
        for task_id in (yield from _unfinished(session)):
            yield from session.plan_cancel(task_id)
        return "cancelled"
    except Exception as exc:
        unfinished = yield from _unfinished(session)
        for task_id in unfinished:
            yield from session.plan_fail(task_id, exc)
        if not unfinished:
            logger.exception("progress_ui: job %s of session %s failed", job, log_id(session_id))
        raise
    except BaseException:
        for task_id in (yield from _unfinished(session)):
            yield from session.plan_error(task_id, INTERRUPTED_MESSAGE)
        raise
    return "complete"


def _unfinished(session: ProgressSession) -> Plan[list[str]]:
    """Tasks not yet final; all of them when the cache cannot say."""
    states = yield from _states(session)
    if states is None:
        return list(session.tasks)
    return [t for t in session.tasks if not states.get(t, ReportedStatus.PENDING).is_final]


def _states(session: ProgressSession) -> Plan[dict[str, ReportedStatus] | None]:
    """Each task's status; None when the cache cannot say (unreachable, or it
    lost the session): the work goes on regardless."""
    try:
        snapshot: SessionSnapshot = yield io(session.to_dict, session.ato_dict)
    except CacheUnavailable:
        return None
    if snapshot["expired"]:
        return None
    return {t: ReportedStatus(task["status"]) for t, task in snapshot["tasks"].items()}
