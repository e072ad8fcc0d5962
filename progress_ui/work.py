"""Running one piece of work as one task of a session, in whatever process runs it.

Task runners (``progress_ui.contrib.django_tasks``, ``progress_ui.contrib.celery``,
the mixins' thread pool) hand the work a :class:`TaskProgress` and call
:func:`run_task`, which records start, completion and failure. Only the session
id and the task id cross the process boundary: both are plain strings that
every task queue can serialise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .exceptions import StillRunning, TaskCancelled
from .session import ProgressSession, SessionReference
from .status import ReportedStatus
from .store import CacheUnavailable
from .validation import log_id

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

    def check_cancelled(self) -> None:
        """Raise ``TaskCancelled`` if the task was cancelled (one cache read): call
        it between steps that do not report progress."""
        if self.session is not None:
            self.session.check_cancelled(self.task_id)

    def __repr__(self) -> str:
        return f"<TaskProgress {self.session_id}/{self.task_id}>"


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

    When the cache cannot be reached, the work still runs, without progress."""
    try:
        session = ProgressSession.get(session_id)
    except CacheUnavailable:
        logger.warning(
            "progress_ui: session %s unreadable; running without progress", log_id(session_id)
        )
        session = None
    progress = TaskProgress(session, task_id)
    try:
        if session is None:
            return func(progress, *args, **kwargs)
        return session.add_sequential(task_id, func, progress, *args, **kwargs).result
    except StillRunning as still:
        kept = still.exc
    # Raised outside the handler, so the exception keeps its own cause and context.
    raise kept


#: A job: ``job(session, **kwargs)`` runs the work of a whole session.
Job = Callable[..., object]


def job_path(job: Job | str) -> str:
    """The dotted path a worker imports ``job`` by; it must be a module-level function."""
    if isinstance(job, str):
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


def run_job(reference: SessionReference, job: str, kwargs: dict[str, Any]) -> None:
    """Run the job at dotted path ``job`` as ``job(session, **kwargs)``, in whatever
    process a task runner picked; ``reference`` is ``session.to_reference()``, so
    the job starts without reading the cache (and runs while it is down). If the
    job raises, its unfinished tasks fail (their bars never wait forever); a
    ``ProgressError``'s text is shown on them. A session whose tasks were all
    cancelled (or have all finished) runs nothing."""
    work = import_string(job)
    session = ProgressSession.from_reference(reference)
    session_id = session.session_id
    if not _unfinished(session):
        logger.info("progress_ui: nothing left to run in session %s (%s)", log_id(session_id), job)
        return
    try:
        work(session, **kwargs)
    except TaskCancelled:
        logger.info(
            "progress_ui: job %s of session %s stopped after a cancel", job, log_id(session_id)
        )
    except Exception as exc:
        unfinished = _unfinished(session)
        for task_id in unfinished:
            session.fail(task_id, exc)
        if not unfinished:
            logger.exception("progress_ui: job %s of session %s failed", job, log_id(session_id))


def _unfinished(session: ProgressSession) -> list[str]:
    """Tasks not yet final; all of them when the cache cannot say (unreachable,
    or it lost the session): the work goes on regardless."""
    try:
        snapshot = session.to_dict()
    except CacheUnavailable:
        return list(session.tasks)
    if snapshot["expired"]:
        return list(session.tasks)
    tasks = snapshot["tasks"]
    return [t for t, task in tasks.items() if not ReportedStatus(task["status"]).is_final]
