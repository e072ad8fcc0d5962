"""Run a piece of work as one task of a progress session on a Django Tasks worker.

::

    from progress_ui.contrib.django_tasks import progress_task

    @progress_task                      # or @progress_task(queue_name=..., priority=...)
    def import_products(progress: TaskProgress, path: str) -> int:
        for row in progress.iterate(load_rows(path)):
            save(row)
        return 42

    session.enqueue("products", import_products, "/data/products.csv")

The decorated name is a real Django ``Task`` (``import_products.enqueue(...)``,
``.using(...)`` and ``.get_result(...)`` work as usual) whose function takes
``(session_id, task_id, *args, **kwargs)``. Like any Django Task it must be
bound at module level under the function's own name, so that a worker can
import it, and its arguments and return value must be JSON-serialisable.

The work may be an ``async def`` function: the task is then an async Django
Task, and the work reports with ``await progress.aupdate(...)``,
``async for row in progress.aiterate(rows)``.

Django 6 ships ``django.tasks``; on Django 5.2 install the ``django-tasks``
backport (``pip install "django-progress-ui[tasks]"``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from django.core.exceptions import ImproperlyConfigured

from progress_ui.core.validation import log_id
from progress_ui.engine import queued
from progress_ui.engine.queued import QueuedJob
from progress_ui.engine.session import ProgressSession, SessionReference
from progress_ui.engine.work import JobOutcome, TaskProgress, arun_task, run_job, run_task
from progress_ui.exceptions import TaskCancelled

logger = logging.getLogger("progress_ui")

#: The result of a cancelled task (Django Tasks has no cancelled state).
CANCELLED = "cancelled"

if TYPE_CHECKING:
    from django.tasks import task, task_backends
    from django.tasks.base import DEFAULT_TASK_BACKEND_ALIAS, Task, TaskResult, TaskResultStatus
    from django.tasks.exceptions import TaskResultDoesNotExist
else:
    # Prefer Django's own framework: it is the one django-tasks-db and other
    # backends pick too when both are installed, and their isinstance checks
    # must see the same Task class.
    try:
        from django.tasks import task, task_backends
        from django.tasks.base import (
            DEFAULT_TASK_BACKEND_ALIAS,
            Task,
            TaskResult,
            TaskResultStatus,
        )
        from django.tasks.exceptions import TaskResultDoesNotExist
    except ImportError:
        try:
            from django_tasks import task, task_backends
            from django_tasks.base import (
                DEFAULT_TASK_BACKEND_ALIAS,
                Task,
                TaskResult,
                TaskResultStatus,
            )
            from django_tasks.exceptions import TaskResultDoesNotExist
        except ImportError as exc:
            raise ImportError(
                "progress_ui.contrib.django_tasks needs Django 6+ (django.tasks) or the "
                "django-tasks backport: pip install django-tasks"
            ) from exc

__all__ = [
    "ProgressTask",
    "ajob_failed",
    "job_failed",
    "progress_task",
    "queued_job",
    "run_progress_job",
    "submit_job",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Where the task function keeps the undecorated work (a function attribute
#: survives ``Task.using()``, which copies the Task but shares its function).
_WORK_ATTR = "_progress_ui_work"


if TYPE_CHECKING:
    _TaskBase = Task[Concatenate[str, str, P], R]
else:

    class _TaskBase(Task, Generic[P, R]):
        """Django's Task cannot be subscripted at run time: make a generic one."""

        __slots__ = ()


class ProgressTask(_TaskBase[P, R]):
    """A Django Task running ``work(progress, *args, **kwargs)`` as one task of a
    session. Made by :func:`progress_task`; enqueue it with
    ``session.enqueue(task_id, this, *args, **kwargs)``."""

    # Same layout as Task (a slotted dataclass), so that it combines with a
    # backend's own slotted task_class.
    __slots__ = ()

    @property
    def work(self) -> Callable[Concatenate[TaskProgress, P], R]:
        """The undecorated function."""
        return cast(Callable[Concatenate[TaskProgress, P], R], getattr(self.func, _WORK_ATTR))

    def __call__(self, progress: TaskProgress, /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the work here and now, outside any task runner (for tests)."""
        return self.work(progress, *args, **kwargs)

    def enqueue_progress(
        self, session: ProgressSession, task_id: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskResult[Concatenate[str, str, P], R]:
        """Enqueue the work as ``task_id`` of ``session``; returns the ``TaskResult``.
        An unknown task id or arguments that are not JSON-serialisable raise
        before anything is enqueued. Where the backend keeps results
        (``supports_get_result``, as django-tasks-db does), the result's id is
        remembered with the task (one cache write): a job that its worker fails
        before it starts (it cannot import the task, say) then ends the bar in
        error instead of leaving it pending (``progress_ui.engine.queued``)."""
        session.check_task(task_id)
        result = self.enqueue(session.session_id, task_id, *args, **kwargs)
        job = queued_job(result)
        if job is not None:
            queued.remember(session.session_id, task_id, job)
        return result

    async def aenqueue_progress(
        self, session: ProgressSession, task_id: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskResult[Concatenate[str, str, P], R]:
        """Async :meth:`enqueue_progress`."""
        session.check_task(task_id)
        result = await self.aenqueue(session.session_id, task_id, *args, **kwargs)
        job = queued_job(result)
        if job is not None:
            await queued.aremember(session.session_id, task_id, job)
        return result


# -- a job its worker failed before it started (engine.queued) -----------------------

#: The runner name of the queued jobs remembered here.
QUEUED_RUNNER = "django_tasks"


def queued_job(result: TaskResult[Any, Any]) -> QueuedJob | None:
    """What to remember of an enqueued result so that readers can ask its backend
    about it: None when the backend keeps no results (``ImmediateBackend`` ran
    it already; ``DummyBackend`` never will)."""
    try:
        keeps = bool(task_backends[result.backend].supports_get_result)
    except ImproperlyConfigured:
        return None
    if not keeps or result.is_finished:
        return None
    return {"runner": QUEUED_RUNNER, "backend": result.backend, "id": str(result.id)}


def job_failed(job: QueuedJob) -> bool:
    """Whether the backend reports the remembered job FAILED (the probe of
    ``progress_ui.engine.queued``; a result it no longer has, or a backend alias
    no longer configured, is not a failure). Public API only: ``get_result``."""
    try:
        result = task_backends[job["backend"]].get_result(job["id"])
    except (KeyError, ImproperlyConfigured, TaskResultDoesNotExist):
        return False
    return bool(result.status == TaskResultStatus.FAILED)


async def ajob_failed(job: QueuedJob) -> bool:
    """Async :func:`job_failed` (``aget_result``)."""
    try:
        result = await task_backends[job["backend"]].aget_result(job["id"])
    except (KeyError, ImproperlyConfigured, TaskResultDoesNotExist):
        return False
    return bool(result.status == TaskResultStatus.FAILED)


#: Backend task class -> its ProgressTask subclass, made once.
_classes: dict[type[Any], type[ProgressTask[Any, Any]]] = {Task: ProgressTask}


def _progress_class(task_class: type[Task[..., Any]]) -> type[ProgressTask[Any, Any]]:
    """ProgressTask on top of the backend's own ``task_class``."""
    if issubclass(task_class, ProgressTask):
        return task_class
    if not issubclass(task_class, Task):
        # A backend of the django-tasks backport on Django 6 (django-tasks-rq):
        # the backport's Task cannot be combined with Django's (their slots
        # clash), and such backends take Django's own Task, as Django's task() does.
        return ProgressTask
    if task_class not in _classes:
        name = f"Progress{task_class.__name__}"
        made = type(name, (ProgressTask, task_class), {"__slots__": ()})
        _classes[task_class] = cast(type[ProgressTask[Any, Any]], made)
    return _classes[task_class]


def _cancelled(session_id: str, task_id: str) -> str:
    """A cancelled task stopped: Django Tasks has no "cancelled" state, so its
    result is SUCCESSFUL with the value ``"cancelled"``, and one INFO line says so
    (not an error with a traceback)."""
    logger.info(
        "progress_ui: task %r of session %s stopped after a cancel", task_id, log_id(session_id)
    )
    return CANCELLED


def _make_task(
    work: Callable[Concatenate[TaskProgress, P], R], options: dict[str, Any]
) -> ProgressTask[P, R]:
    checked: object = work  # (no narrowing of work itself: it would lose R)
    if not inspect.isfunction(checked):
        raise TypeError(f"progress_task decorates a module-level function, got {work!r}")

    run: Callable[..., Any]
    if inspect.iscoroutinefunction(work):
        # An async Django Task: its worker awaits it (Django runs it in an
        # event loop), and so the progress writes are awaited too.
        async def run_async(session_id: str, task_id: str, /, *args: Any, **kwargs: Any) -> Any:
            try:
                return await arun_task(session_id, task_id, work, *args, **kwargs)
            except TaskCancelled:
                return _cancelled(session_id, task_id)

        run = run_async
    else:

        def run_sync(session_id: str, task_id: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return run_task(session_id, task_id, work, *args, **kwargs)
            except TaskCancelled:
                return cast(R, _cancelled(session_id, task_id))

        run = run_sync

    # A worker finds the task by its function's module and qualified name: make
    # them the decorated name's, which will be bound to the returned Task.
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(run, attr, getattr(work, attr))
    setattr(run, _WORK_ATTR, work)
    backend = options.setdefault("backend", DEFAULT_TASK_BACKEND_ALIAS)
    # What Django's task() decorator does, with the backend's task class
    # extended; the Task validates itself against the backend here.
    task_class = _progress_class(task_backends[backend].task_class)
    return cast(ProgressTask[P, R], task_class(func=run, **options))


@overload
def progress_task(work: Callable[Concatenate[TaskProgress, P], R], /) -> ProgressTask[P, R]: ...


@overload
def progress_task(
    *,
    priority: int | None = None,
    queue_name: str | None = None,
    backend: str | None = None,
) -> Callable[[Callable[Concatenate[TaskProgress, P], R]], ProgressTask[P, R]]: ...


def progress_task(
    work: Callable[Concatenate[TaskProgress, P], R] | None = None,
    /,
    *,
    priority: int | None = None,
    queue_name: str | None = None,
    backend: str | None = None,
) -> ProgressTask[P, R] | Callable[[Callable[Concatenate[TaskProgress, P], R]], ProgressTask[P, R]]:
    """Make ``work(progress, *args, **kwargs)`` a Django Task of progress sessions.

    Use bare or with Django's ``task()`` options (``priority``, ``queue_name``,
    ``backend``). The work gets a :class:`~progress_ui.engine.work.TaskProgress`; the
    task is RUNNING while it runs, then COMPLETE, or ERROR with a safe message
    (the exception is re-raised, so the Django result is FAILED too). A cancelled
    task stops at its next step; its result is SUCCESSFUL with the value
    ``"cancelled"`` (Django Tasks has no cancelled state).
    """
    given = {"priority": priority, "queue_name": queue_name, "backend": backend}
    options = {name: value for name, value in given.items() if value is not None}

    def decorate(func: Callable[Concatenate[TaskProgress, P], R]) -> ProgressTask[P, R]:
        return _make_task(func, dict(options))

    return decorate if work is None else decorate(work)


# -- the "django_tasks" runner of the view mixins (PROGRESS_UI["RUNNER"]) -----------


# A worker imports a task by its function's module and name. Made when this
# module is first imported (the runner is chosen), with the default backend.
@task
def run_progress_job(reference: SessionReference, job: str, kwargs: dict[str, Any]) -> JobOutcome:
    """Worker side: ``progress_ui.engine.work.run_job`` (a job of a whole session;
    an ``async def`` job runs in an event loop of its own).

    Django Tasks has no "cancelled" state: a job stopped by a cancel is
    SUCCESSFUL with the return value ``"cancelled"`` (``"complete"`` otherwise);
    a job that raised, or that the worker cannot import, is FAILED."""
    return run_job(reference, job, kwargs)


def submit_job(session: ProgressSession, job: str, kwargs: dict[str, Any]) -> object:
    """The ``"django_tasks"`` runner: enqueue the job (a Django ``TaskResult``).
    Arguments that are not JSON raise ``TypeError`` before anything is enqueued."""
    return run_progress_job.enqueue(session.to_reference(), job, kwargs)
