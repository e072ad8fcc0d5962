"""Run a piece of work as one task of a progress session on a Dramatiq worker.

::

    from progress_ui.contrib.dramatiq import progress_actor

    @progress_actor                       # or @progress_actor(max_retries=3, queue_name=...)
    def import_products(progress: TaskProgress, path: str) -> None:
        for row in progress.iterate(load_rows(path)):
            save(row)

    session.enqueue("products", import_products, "/data/products.csv")   # a Message

Import this module (and your actor modules) after the broker is set
(``dramatiq.set_broker``, or django-dramatiq's settings), as any actor module.
The decorated name is a real Dramatiq actor (``send``, ``send_with_options``
work) whose arguments are ``(session_id, task_id, *args, **kwargs)``.

While Dramatiq's Retries middleware will run a failed message again, the task
stays RUNNING with "Retrying (attempt 2 of 4)…"; only the last failure shows
the error. A ``ProgressError`` is an expected failure (the actor's ``throws``):
one INFO line, no retry; pass ``throws=()`` to retry it. Dramatiq has no
"cancelled" state: a cancelled task's message (queued or running) ends as done,
the work skipped or stopped at its next step, with one INFO line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

import dramatiq
from dramatiq import Actor, Broker, Message, MessageProxy, Middleware

try:
    from dramatiq.errors import BrokerConnectionError
except ImportError:  # Dramatiq 1
    from dramatiq.errors import ConnectionError as BrokerConnectionError  # type: ignore[no-redef]
from dramatiq.middleware import Retries

from progress_ui.contrib.threads import QueueUnavailable
from progress_ui.core import messages
from progress_ui.core.validation import log_id
from progress_ui.engine.session import ProgressSession, SessionReference
from progress_ui.engine.work import TaskProgress, attempt_guarded, run_job, run_task
from progress_ui.exceptions import ProgressError, StillRunning, TaskCancelled

__all__ = ["ProgressActor", "ProgressMiddleware", "progress_actor", "submit_job"]

logger = logging.getLogger("progress_ui")

P = ParamSpec("P")
R = TypeVar("R")

#: The message being processed by this worker thread (set by ProgressMiddleware).
_current = threading.local()


class ProgressMiddleware(Middleware):
    """Shows Dramatiq's retries on the bar and ends a task once its message has
    failed for good. :func:`progress_actor` adds it to the broker, just before
    ``Retries``, so that its ``after_process_message`` runs after Retries'."""

    #: Shown while a retry is pending (as ``progress_ui.contrib.celery``'s).
    retry_message = messages.RETRYING
    retry_message_unlimited = messages.RETRYING_UNLIMITED

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        _current.message = message

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        _current.message = None
        actor = broker.actors.get(message.actor_name)
        if exception is None or not isinstance(actor, ProgressActor) or len(message.args) < 2:
            return
        session_id, task_id = message.args[0], message.args[1]
        retries = next((m for m in broker.middleware if isinstance(m, Retries)), None)
        try:
            session = ProgressSession.get(session_id)
            if session is None or task_id not in session.tasks:
                return
            if retries is None or message.failed:
                session.fail(task_id, exception)
                return
            # Retries has counted this attempt and sent the message again.
            attempt = int(message.options.get("retries", 0)) + 1
            limit = message.options.get(
                "max_retries", actor.options.get("max_retries", retries.max_retries)
            )
            if limit is None or actor.options.get("retry_when", retries.retry_when):
                text = self.retry_message_unlimited.format(attempt=attempt)
            else:
                text = self.retry_message.format(attempt=attempt, attempts=int(limit) + 1)
            session.update(task_id, message=text)
            session.detach(task_id)  # the retry may run in another process
        except Exception:
            logger.exception(
                "progress_ui could not record the failure of task %r of session %s",
                task_id,
                log_id(session_id),
            )


def _ensure_middleware(broker: Broker) -> None:
    if any(isinstance(m, ProgressMiddleware) for m in broker.middleware):
        return
    has_retries = any(isinstance(m, Retries) for m in broker.middleware)
    broker.add_middleware(ProgressMiddleware(), before=Retries if has_retries else None)


class ProgressActor(Actor[Concatenate[str, str, P], R]):
    """A Dramatiq actor running ``work(progress, *args, **kwargs)`` as one task
    of a session. Made by :func:`progress_actor`."""

    def enqueue_progress(
        self, session: ProgressSession, task_id: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> Message[R]:
        """Send the work as ``task_id`` of ``session``; returns the ``Message``."""
        return self.apply_progress(session, task_id, args, kwargs)

    def apply_progress(
        self,
        session: ProgressSession,
        task_id: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        /,
        **options: Any,
    ) -> Message[R]:
        """``send_with_options`` for a session (``delay``, ``max_retries``...). An
        unknown task id raises before anything is sent; a broker that cannot be
        reached raises ``QueueUnavailable``."""
        session.check_task(task_id)
        try:
            return self.send_with_options(
                args=(session.session_id, task_id, *args), kwargs=kwargs, **options
            )
        except BrokerConnectionError as exc:
            raise QueueUnavailable(f"The Dramatiq broker cannot be reached: {exc}") from exc

    def with_options(self, **options: Any) -> ProgressCall[P, R]:
        """This actor with ``send_with_options`` options, for ``session.enqueue``."""
        return ProgressCall(self, options)


class ProgressCall(Generic[P, R]):
    """A progress actor with send options (see ``ProgressActor.with_options``)."""

    def __init__(self, actor: ProgressActor[P, R], options: dict[str, Any]) -> None:
        self.actor = actor
        self.options = options

    def enqueue_progress(
        self, session: ProgressSession, task_id: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> Message[R]:
        return self.actor.apply_progress(session, task_id, args, kwargs, **self.options)


def run_progress(
    work: Callable[..., R], session_id: str, task_id: str, /, *args: Any, **kwargs: Any
) -> R | None:
    """The actor's body: run ``work`` as the task. Any exception leaves the task
    RUNNING: :class:`ProgressMiddleware` shows the retry, or the error once
    Dramatiq has given up. A cancelled task returns None (Dramatiq: done)."""
    message = getattr(_current, "message", None)
    retrying = message is not None and bool(message.options.get("retries"))
    started = False

    def attempt(progress: TaskProgress) -> R | Awaitable[R]:
        nonlocal started
        started = True
        if retrying:
            progress.update(message="")  # the retry runs: not "Retrying…" any more
        return attempt_guarded(lambda: work(progress, *args, **kwargs), still_running)

    def still_running(exc: Exception) -> None:
        if message is not None:  # run by a worker (called directly: fail here)
            raise StillRunning(exc) from None

    try:
        # run_task runs an awaitable result to its end: the value is an R.
        return cast(R, run_task(session_id, task_id, attempt))
    except TaskCancelled:
        logger.info(
            "progress_ui: task %r of session %s stopped after a cancel", task_id, log_id(session_id)
        )
    except ValueError:
        if started:
            raise
        # Already finished (a worker lost it and the broker delivered it again).
        logger.info("progress_ui: task %r of session %s already ended", task_id, log_id(session_id))
    return None


@overload
def progress_actor(work: Callable[Concatenate[TaskProgress, P], R], /) -> ProgressActor[P, R]: ...


@overload
def progress_actor(
    *,
    actor_name: str | None = None,
    queue_name: str = "default",
    priority: int = 0,
    broker: Broker | None = None,
    **options: Any,
) -> Callable[[Callable[Concatenate[TaskProgress, P], R]], ProgressActor[P, R]]: ...


def progress_actor(
    work: Callable[..., Any] | None = None,
    /,
    *,
    actor_name: str | None = None,
    queue_name: str = "default",
    priority: int = 0,
    broker: Broker | None = None,
    **options: Any,
) -> Any:
    """Make ``work(progress, *args, **kwargs)`` a Dramatiq actor of progress sessions.

    Takes ``dramatiq.actor``'s arguments and options (``max_retries``,
    ``min_backoff``, ``time_limit``, ``throws``...). The task is RUNNING while
    the work runs, then COMPLETE, or ERROR with a safe message once Dramatiq
    gives up on the message (the exception is re-raised, so Dramatiq logs it).
    """
    options.setdefault("throws", (ProgressError,))

    def decorate(func: Callable[..., Any]) -> ProgressActor[Any, Any]:
        if not callable(func):
            raise TypeError(f"progress_actor decorates a function, got {func!r}")
        target = broker or dramatiq.get_broker()
        _ensure_middleware(target)

        def run(session_id: str, task_id: str, /, *args: Any, **kwargs: Any) -> Any:
            return run_progress(func, session_id, task_id, *args, **kwargs)

        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(run, attr, getattr(func, attr, None))
        declare = dramatiq.actor(
            actor_class=ProgressActor,
            actor_name=actor_name or func.__name__,
            queue_name=queue_name,
            priority=priority,
            broker=target,
            **options,
        )
        return cast("ProgressActor[Any, Any]", declare(run))

    return decorate if work is None else decorate(work)


# -- the "dramatiq" runner of the view mixins (PROGRESS_UI["RUNNER"]) -----------------

#: The Dramatiq name of the view mixins' job actor.
JOB_ACTOR_NAME = "progress_ui.run_progress_job"


@dramatiq.actor(actor_name=JOB_ACTOR_NAME, max_retries=0, throws=(ProgressError,))
def run_progress_job(reference: SessionReference, job: str, kwargs: dict[str, Any]) -> None:
    """Worker side: ``progress_ui.engine.work.run_job``; not retried (a job of a
    whole session restarts nothing). A job stopped by a cancel is done."""
    run_job(reference, job, kwargs)


def submit_job(session: ProgressSession, job: str, kwargs: dict[str, Any]) -> Message[None]:
    """The ``"dramatiq"`` runner: send the job to the workers (its ``Message``)."""
    try:
        return run_progress_job.send(session.to_reference(), job, kwargs)
    except BrokerConnectionError as exc:
        raise QueueUnavailable(f"The Dramatiq broker cannot be reached: {exc}") from exc
