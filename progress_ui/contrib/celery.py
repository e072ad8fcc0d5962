"""Run a piece of work as one task of a progress session on a Celery worker.

::

    from progress_ui.contrib.celery import progress_task

    @progress_task                       # a shared_task; or @progress_task(app=app, ...)
    def import_products(progress: TaskProgress, path: str) -> int:
        for row in progress.iterate(load_rows(path)):
            save(row)
        return 42

    session.enqueue("products", import_products, "/data/products.csv")

The decorated name is a real Celery task (``delay``, ``apply_async``, ``s()``
work as usual) whose arguments are ``(session_id, task_id, *args, **kwargs)``.
Only those two strings travel with the message: the worker reports to the
progress cache, which every web and worker process must share (Redis, ...).
No result backend is needed.

Retries (``self.retry()`` with ``bind=True``, or ``autoretry_for``) keep the
task RUNNING with the message ``"Retrying (attempt 2 of 4)…"`` and the bar where
it was; only the final failure shows the error. A message revoked (or expired)
before it ran is cancelled (``"Cancelled."``, ``"Expired."``) as soon as a worker
discards it. A task stopped by a cancel ends as a revoked one: REVOKED in the
result backend (if any) and one INFO line ("ignored") in the worker's log. A
worker that receives a progress task it does not have (web and worker on
different code) ends that task in error at once.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    TypeVar,
    cast,
    overload,
)

from celery import Task, shared_task
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import task_revoked
from kombu.exceptions import OperationalError

from progress_ui.contrib.celery_handlers import (
    job_targets,
    remember,
    safely,
    stop_as_revoked,
    task_target,
)
from progress_ui.contrib.threads import QueueUnavailable
from progress_ui.core import messages
from progress_ui.core.validation import log_id
from progress_ui.engine.session import ProgressSession, SessionReference
from progress_ui.engine.work import JobOutcome, TaskProgress, attempt_guarded, run_job, run_task
from progress_ui.exceptions import ProgressError, StillRunning, TaskCancelled

if TYPE_CHECKING:
    from celery import Celery
    from celery.app.task import Context
    from celery.result import AsyncResult

__all__ = ["ProgressTask", "progress_task"]

logger = logging.getLogger("progress_ui")

P = ParamSpec("P")
R = TypeVar("R")

#: Names of the two leading task arguments (in Celery's argument check).
_ID_PARAMS = ("progress_session_id", "progress_task_id")


class ProgressTask(Task[Any, Any], Generic[P, R]):
    """Base class of the Celery tasks made by :func:`progress_task`.

    The task's arguments are ``(session_id, task_id, *args, **kwargs)``; it runs
    ``work(progress, *args, **kwargs)`` (``work(self, progress, ...)`` with
    ``bind=True``) as that task of that session. Subclass it (``base=``) to change
    the messages below or to add Celery handlers (call ``super()`` in
    ``retry`` and ``on_failure``).
    """

    #: Shown while a retry is pending; ``{attempt}`` is the next attempt (2 for
    #: the first retry), ``{attempts}`` all attempts allowed (max_retries + 1).
    #: The defaults are stored in English and shown in the viewer's language; a
    #: text set on a subclass is shown as it is.
    progress_retry_message = messages.RETRYING
    #: The same without a retry limit (``max_retries=None``).
    progress_retry_message_unlimited = messages.RETRYING_UNLIMITED
    #: Shown (as an error) when the message was revoked before it ran, or the
    #: running task was terminated (``revoke(terminate=True)``).
    progress_revoked_message = messages.CANCELLED
    #: Shown (as an error) when the message expired (``expires=``) before it ran.
    progress_expired_message = messages.EXPIRED

    #: A ``ProgressError`` is an expected failure: the worker logs it in one line
    #: (INFO), without a traceback. Pass ``throws=`` to change this.
    throws = (ProgressError,)

    #: The undecorated work and whether it takes the task first (set by progress_task).
    progress_work: Callable[..., R]
    progress_bind: bool = False

    # -- enqueueing (web side) ---------------------------------------------------

    def enqueue_progress(
        self, session: ProgressSession, task_id: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncResult[R]:
        """Send the work to a worker as ``task_id`` of ``session``; returns the
        ``AsyncResult``. ``session.enqueue(task_id, this, ...)`` calls this."""
        return self.apply_progress(session, task_id, args, kwargs)

    def apply_progress(
        self,
        session: ProgressSession,
        task_id: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        /,
        **options: Any,
    ) -> AsyncResult[R]:
        """``apply_async`` for a session; ``options`` are ``apply_async``'s
        (``countdown``, ``queue``, ``task_id``: Celery's own id...). An unknown
        task id, and arguments the work does not accept, raise before anything
        is sent."""
        session.check_task(task_id)
        result: AsyncResult[R] = self.apply_async(
            args=(session.session_id, task_id, *args), kwargs=kwargs or {}, **options
        )
        remember(session, task_id, result.id)
        return result

    def with_options(self, **options: Any) -> ProgressCall[P, R]:
        """This task with ``apply_async`` options, for ``session.enqueue``.

        For example::

            session.enqueue("report", build_report.with_options(countdown=10), month)
        """
        return ProgressCall(self, options)

    # -- running (worker side) ---------------------------------------------------

    def run_progress(self, session_id: str, task_id: str, /, *args: Any, **kwargs: Any) -> R:
        """Run the work as ``task_id`` of ``session_id`` (what the task's ``run`` does).

        An exception after which Celery runs the task again (``Retry``, one in
        ``autoretry_for``) or that tells the worker to leave the outcome alone
        (``Ignore``, ``Reject(requeue=True)``) leaves the task RUNNING; any other
        marks it ERROR. Both are re-raised to Celery."""
        work = self.progress_work

        def attempt(progress: TaskProgress) -> R | Awaitable[R]:
            if self.request.retries:
                progress.update(message="")  # the retry is running: not "Retrying…" any more
            if self.progress_bind:
                return attempt_guarded(
                    lambda: work(self, progress, *args, **kwargs), self._raise_if_kept_running
                )
            return attempt_guarded(
                lambda: work(progress, *args, **kwargs), self._raise_if_kept_running
            )

        try:
            # run_task runs an awaitable result to its end: the value is an R.
            return cast(R, run_task(session_id, task_id, attempt))
        except TaskCancelled:
            if self.request.called_directly:
                raise
            logger.info(
                "progress_ui: task %r of session %s stopped after a cancel",
                task_id,
                log_id(session_id),
            )
            stop_as_revoked(self)

    def _raise_if_kept_running(self, exc: Exception) -> None:
        """End the attempt with ``StillRunning`` when Celery runs the task again
        or leaves its outcome alone after ``exc``."""
        if self.progress_keeps_running(exc):
            raise StillRunning(exc) from None

    def progress_keeps_running(self, exc: BaseException) -> bool:
        """Whether ``exc`` leaves the task RUNNING rather than ERROR (see
        :meth:`run_progress`). An ``autoretry_for`` exception that exhausted the
        retries is marked ERROR by :meth:`on_failure`."""
        if isinstance(exc, Retry | Ignore):
            return True
        if isinstance(exc, Reject):
            return bool(getattr(exc, "requeue", False))
        return self._autoretries(exc) and not self.request.called_directly

    def _autoretries(self, exc: BaseException) -> bool:
        autoretry_for = tuple(getattr(self, "autoretry_for", ()) or ())
        dont_autoretry_for = tuple(getattr(self, "dont_autoretry_for", ()) or ())
        return isinstance(exc, autoretry_for) and not isinstance(exc, dont_autoretry_for)

    def progress_retry_text(self, attempt: int, attempts: int | None) -> str:
        """The message shown from the moment a retry is scheduled until it runs."""
        if attempts is None:
            return self.progress_retry_message_unlimited.format(attempt=attempt)
        return self.progress_retry_message.format(attempt=attempt, attempts=attempts)

    # -- Celery hooks (worker side) ----------------------------------------------

    def retry(
        self,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        exc: Exception | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Celery's ``retry`` (also what ``autoretry_for`` calls), showing
        "Retrying (attempt 2 of 4)…" on the bar first when a retry will be sent.
        Written before the new message is sent, so that it never overwrites what
        a quick retry on another worker reports. ``args``, when given, must start
        with the two ids. ``throw=False`` is not supported (the attempt would
        complete the task)."""
        request = self.request
        target = task_target(request.args)
        if target is not None and not request.called_directly:
            limit = self.max_retries if max_retries is None else max_retries
            retries = int(request.retries or 0) + 1
            if limit is None or retries <= limit:
                text = self.progress_retry_text(retries + 1, None if limit is None else limit + 1)
                safely("record a retry of", target, lambda s: s.update(target[1], message=text))
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """The task failed for good. An ``autoretry_for`` exception left the task
        RUNNING on its way to Celery's retry; once the retries are exhausted it
        arrives here and marks the task ERROR (with a ``ProgressError``'s text,
        or the generic message)."""
        target = task_target(args)
        if target is not None and self._autoretries(exc):
            safely("record the failure of", target, lambda s: s.fail(target[1], exc))
        super().on_failure(exc, task_id, args, kwargs, einfo)

    def on_progress_revoked(
        self, request: Context | None, *, terminated: bool, expired: bool
    ) -> None:
        """The worker discarded the message (revoked or expired) or terminated
        the running task: mark the task CANCELLED (a finished task stays as it is)."""
        target = task_target(getattr(request, "args", None))
        if target is None:
            return
        message = self.progress_expired_message if expired else self.progress_revoked_message
        safely("record the revocation of", target, lambda s: s.cancel(target[1], message))


class ProgressCall(Generic[P, R]):
    """A progress task with ``apply_async`` options (see ``ProgressTask.with_options``)."""

    def __init__(self, task: ProgressTask[P, R], options: dict[str, Any]) -> None:
        self.task = task
        self.options = options

    def enqueue_progress(
        self, session: ProgressSession, task_id: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncResult[R]:
        return self.task.apply_progress(session, task_id, args, kwargs, **self.options)

    def __repr__(self) -> str:
        return f"<ProgressCall {self.task.name} {self.options!r}>"


@task_revoked.connect(weak=False)
def _on_task_revoked(
    sender: object = None,
    request: Context | None = None,
    terminated: bool = False,
    expired: bool = False,
    **_: Any,
) -> None:
    # Sent by the worker (its main process) that discarded or terminated the task.
    if isinstance(sender, ProgressTask):
        sender.on_progress_revoked(request, terminated=bool(terminated), expired=bool(expired))
    elif getattr(sender, "name", None) == JOB_TASK_NAME:
        # A job of the view mixins carries every task of its session: none will run.
        message = ProgressTask.progress_expired_message if expired else None
        for session_id, task_id in job_targets(getattr(request, "args", None)):

            def end(session: ProgressSession, task_id: str = task_id) -> None:
                session.cancel(task_id, message)

            safely("record the revocation of", (session_id, task_id), end)


# -- the decorator -------------------------------------------------------------------


def _signature_for(work: Callable[..., Any], bind: bool) -> inspect.Signature | None:
    """The task's call signature: the two ids, then the work's parameters after
    ``progress`` (and ``self``), so that Celery's argument check (``typing``)
    rejects wrong arguments in the caller, before anything is sent."""
    try:
        params = list(inspect.signature(work).parameters.values())
    except (TypeError, ValueError):
        return None
    skip = 2 if bind else 1
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) < skip or any(p.kind not in positional for p in params[:skip]):
        return None
    rest = [p.replace(annotation=inspect.Parameter.empty) for p in params[skip:]]
    if any(p.name in (*_ID_PARAMS, "self") for p in rest):
        return None
    head = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_ONLY) for name in ("self", *_ID_PARAMS)
    ]
    try:
        return inspect.Signature([*head, *rest])
    except ValueError:
        return None


def _make_task(
    work: Callable[..., Any], app: Celery | None, bind: bool, options: dict[str, Any]
) -> ProgressTask[Any, Any]:
    if not callable(work):
        raise TypeError(f"progress_task decorates a function, got {work!r}")
    base = options.pop("base", None) or ProgressTask
    if not (isinstance(base, type) and issubclass(base, ProgressTask)):
        raise TypeError(f"base must be a subclass of ProgressTask, got {base!r}")

    def run(
        self: ProgressTask[Any, Any], session_id: str, task_id: str, /, *args: Any, **kwargs: Any
    ) -> Any:
        return self.run_progress(session_id, task_id, *args, **kwargs)

    # Celery names the task after its function: make that the work's module and
    # name. No __wrapped__: Celery would check the work's own arguments.
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(run, attr, getattr(work, attr, None))
    signature = _signature_for(work, bind)
    if signature is not None:
        run.__signature__ = signature  # type: ignore[attr-defined]
    register: Callable[..., Callable[[Callable[..., Any]], Any]] = (
        shared_task if app is None else app.task
    )
    # A shared task is a lazy proxy of the current app's task (it passes
    # isinstance checks and forwards every attribute).
    return cast(
        "ProgressTask[Any, Any]",
        register(
            bind=True, base=base, progress_work=staticmethod(work), progress_bind=bind, **options
        )(run),
    )


@overload
def progress_task(work: Callable[Concatenate[TaskProgress, P], R], /) -> ProgressTask[P, R]: ...


@overload
def progress_task(
    *, app: Celery | None = None, bind: Literal[False] = False, **options: Any
) -> Callable[[Callable[Concatenate[TaskProgress, P], R]], ProgressTask[P, R]]: ...


@overload
def progress_task(
    *, app: Celery | None = None, bind: Literal[True], **options: Any
) -> Callable[[Callable[Concatenate[Any, TaskProgress, P], R]], ProgressTask[P, R]]: ...


def progress_task(
    work: Callable[..., Any] | None = None,
    /,
    *,
    app: Celery | None = None,
    bind: bool = False,
    **options: Any,
) -> Any:
    """Make ``work(progress, *args, **kwargs)`` a Celery task of progress sessions.

    Use bare (a ``shared_task``) or with ``app=`` (``app.task``) and any Celery task
    option: ``name``, ``queue``, ``max_retries``, ``autoretry_for``,
    ``retry_backoff``, ``acks_late``, ``base`` (a :class:`ProgressTask` subclass)...
    With ``bind=True`` the work gets the task first, ``work(self, progress, ...)``,
    for ``self.retry()`` and ``self.request``. The work gets a
    :class:`~progress_ui.engine.work.TaskProgress`; the task is RUNNING while it runs,
    then COMPLETE, or ERROR with a safe message (the exception is re-raised, so
    Celery records the failure too).
    """

    def decorate(func: Callable[..., Any]) -> ProgressTask[Any, Any]:
        return _make_task(func, app, bind, dict(options))

    return decorate if work is None else decorate(work)


# -- the "celery" runner of the view mixins (PROGRESS_UI["RUNNER"]) -------------------


#: The Celery name of the view mixins' job task.
JOB_TASK_NAME = "progress_ui.run_progress_job"


@shared_task(name=JOB_TASK_NAME, bind=True, throws=(ProgressError,))
def run_progress_job(
    self: Task[Any, Any], reference: SessionReference, job: str, kwargs: dict[str, Any]
) -> JobOutcome:
    """Worker side: ``progress_ui.engine.work.run_job`` (a job of a whole session).
    A job that raised fails in Celery too (a ``ProgressError`` is logged in one
    line); one stopped by a cancel ends as a revoked task does."""
    outcome = run_job(reference, job, kwargs)
    if outcome == "cancelled" and not self.request.called_directly:
        stop_as_revoked(self)
    return outcome


def submit_job(session: ProgressSession, job: str, kwargs: dict[str, Any]) -> AsyncResult[Any]:
    """The ``"celery"`` runner: send the job to the workers (no result backend
    needed). A broker that cannot be reached raises ``QueueUnavailable`` (after
    Celery's publish retries); arguments the serializer refuses raise as they are."""
    try:
        result = run_progress_job.delay(session.to_reference(), job, kwargs)
    except (OperationalError, OSError) as exc:
        raise QueueUnavailable(f"The Celery broker cannot be reached: {exc}") from exc
    for task_id in session.tasks:
        remember(session, task_id, result.id)
    return result
