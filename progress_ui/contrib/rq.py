"""Run a piece of work as one task of a progress session on an RQ worker.

::

    @progress_task                 # django-rq's "default" queue; or queue="imports" or an rq.Queue
    def import_products(progress: TaskProgress, path: str) -> int: ...

    session.enqueue("products", import_products, "/data/products.csv")   # an rq Job

The decorated name must stay at module level: the job names it by its dotted
path, and the worker (``rq worker``, django-rq's ``rqworker``) imports it. Only
the session id and the task id travel with the job's arguments. Retries
(``retry=Retry(max=3)``) keep the task RUNNING with "Retrying (attempt 2 of
4)…". A cancel cancels a queued job (RQ's CANCELED: it never runs); a running
job stops at its next progress step and has its worker stop it through RQ's
stop-job command, so RQ records it STOPPED.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import receiver
from redis.exceptions import RedisError
from rq import Queue, Retry, Worker
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus, get_current_job

from progress_ui.conf import current as current_settings
from progress_ui.contrib.threads import QueueUnavailable
from progress_ui.core import messages
from progress_ui.core.validation import log_id
from progress_ui.engine.session import ProgressSession, SessionReference
from progress_ui.engine.work import JobOutcome, TaskProgress, attempt_guarded, run_job, run_task
from progress_ui.exceptions import StillRunning, TaskCancelled
from progress_ui.signals import task_cancelled

__all__ = ["ProgressTask", "progress_task", "run_progress_job", "submit_job"]

logger = logging.getLogger("progress_ui")

P = ParamSpec("P")
R = TypeVar("R")

#: Seconds a job stopped by a cancel waits for its worker to end it (RQ's
#: stop-job command); past that it returns and RQ records a success.
STOP_WAIT = 10.0
#: Statuses of a job that a cancel can still keep from running.
_WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED)
#: Queues given as ``rq.Queue`` objects, by name: where a cancel finds their jobs.
_queues: dict[str, Queue] = {}


def get_queue(queue: str | Queue) -> Queue:
    """``queue`` itself, or the queue of that name (one given to a decorator in
    this process, else django-rq's ``RQ_QUEUES``)."""
    if isinstance(queue, Queue):
        return queue
    if queue in _queues:
        return _queues[queue]
    fix = f'RQ_QUEUES = {{"{queue}": {{"URL": "redis://127.0.0.1:6379/0"}}}}'
    try:
        import django_rq

        return django_rq.get_queue(queue)
    except (ImportError, KeyError) as exc:
        raise ImproperlyConfigured(
            f"The RQ queue {queue!r} is not configured: pip install django-rq, add "
            f'"django_rq" to INSTALLED_APPS and set {fix}; or pass an rq.Queue.'
        ) from exc


class ProgressTask(Generic[P, R]):
    """What :func:`progress_task` makes: call it with ``(session_id, task_id,
    *args, **kwargs)`` (what the worker does) to run ``work(progress, *args,
    **kwargs)`` as that task of that session."""

    #: Shown while a retry is pending (see celery's ProgressTask).
    progress_retry_message = messages.RETRYING

    def __init__(
        self, work: Callable[Concatenate[TaskProgress, P], R], queue: str | Queue, **options: Any
    ) -> None:
        self.work = work
        self.queue = queue
        self.options = options
        #: Where the worker imports this object from (the decorated name).
        self.path = f"{work.__module__}.{work.__qualname__}"
        if isinstance(queue, Queue):
            _queues.setdefault(queue.name, queue)

    # -- enqueueing (web side) ---------------------------------------------------

    def enqueue_progress(
        self, session: ProgressSession, task_id: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> Job:
        """Enqueue the work as ``task_id`` of ``session``; returns the RQ ``Job``."""
        return self.apply_progress(session, task_id, args, kwargs)

    def with_options(self, **options: Any) -> ProgressCall[P, R]:
        """This task with ``Queue.enqueue_call`` options (``retry``, ``at_front``...)."""
        return ProgressCall(self, options)

    def apply_progress(
        self,
        session: ProgressSession,
        task_id: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        /,
        **options: Any,
    ) -> Job:
        """Enqueue with ``Queue.enqueue_call`` options; an unknown task id raises
        first, a Redis that cannot be reached ``QueueUnavailable``."""
        session.check_task(task_id)
        options = {**self.options, **options}
        queue = get_queue(options.pop("queue", self.queue))
        if isinstance(retry := options.get("retry"), Retry):  # all attempts, for the retry text
            options["meta"] = {**options.get("meta", {}), "progress_attempts": retry.max + 1}
        args = (session.session_id, task_id, *args)
        return _enqueue(session, [task_id], queue, self.path, args, kwargs, **options)

    # -- running (worker side) ---------------------------------------------------

    def __call__(self, session_id: str, task_id: str, /, *args: Any, **kwargs: Any) -> R | None:
        job = get_current_job()
        # All attempts (set by apply_progress with a Retry) and those RQ has left.
        total = int(job.meta.get("progress_attempts", 0)) if job is not None else 0
        left = (job.retries_left or 0) if job is not None else 0
        started = False

        def attempt(progress: TaskProgress) -> R | Awaitable[R]:
            nonlocal started
            started = True
            if total and left < total - 1:
                progress.update(message="")  # the retry runs: not "Retrying…" any more

            def on_error(exc: Exception) -> None:
                if total and left:  # RQ runs it again
                    text = self.progress_retry_message.format(
                        attempt=total - left + 1, attempts=total
                    )
                    progress.update(message=text)
                    raise StillRunning(exc) from None

            return attempt_guarded(lambda: self.work(progress, *args, **kwargs), on_error)

        cancelled = False
        try:
            # run_task runs an awaitable result to its end: the value is an R.
            return cast(R, run_task(session_id, task_id, attempt))
        except TaskCancelled:
            cancelled = True
        except ValueError:
            if started:
                raise  # the work's own; else the task had ended (RQ runs a lost job again)
        what = "stopped after a cancel" if cancelled else "already ended"
        logger.info("progress_ui: task %r of session %s %s", task_id, log_id(session_id), what)
        if cancelled:
            stop_current_job(job)
        return None


class ProgressCall(Generic[P, R]):
    """A progress task with enqueue options (see ``ProgressTask.with_options``)."""

    def __init__(self, task: ProgressTask[P, R], options: dict[str, Any]) -> None:
        self.task = task
        self.options = options

    def enqueue_progress(
        self, session: ProgressSession, task_id: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> Job:
        return self.task.apply_progress(session, task_id, args, kwargs, **self.options)


@overload
def progress_task(work: Callable[Concatenate[TaskProgress, P], R], /) -> ProgressTask[P, R]: ...


@overload
def progress_task(
    *, queue: str | Queue = "default", **options: Any
) -> Callable[[Callable[Concatenate[TaskProgress, P], R]], ProgressTask[P, R]]: ...


def progress_task(
    work: Callable[..., Any] | None = None, /, *, queue: str | Queue = "default", **options: Any
) -> Any:
    """Make ``work(progress, *args, **kwargs)`` an RQ job of progress sessions.

    ``queue`` is a django-rq queue name or an ``rq.Queue``; ``options`` are
    ``Queue.enqueue_call``'s (``retry=Retry(max=3)``, ``timeout``, ``result_ttl``...).
    The task is RUNNING while the work runs, then COMPLETE, or ERROR with a safe
    message (the exception is re-raised, so RQ records the failure too).
    """

    def decorate(func: Callable[..., Any]) -> ProgressTask[Any, Any]:
        if not callable(func):
            raise TypeError(f"progress_task decorates a function, got {func!r}")
        return ProgressTask(func, queue, **options)

    return decorate if work is None else decorate(work)


# -- stopping -------------------------------------------------------------------------


def stop_current_job(job: Job | None) -> None:
    """End the running job as RQ ends a stopped one (STOPPED): ask its worker to
    stop it, and wait for the worker to end this work horse. A job run without a
    work horse of its own (``SimpleWorker``, called directly) just returns."""
    if job is None or not job.worker_name:
        return
    try:
        key = Worker.redis_worker_namespace_prefix + job.worker_name
        worker = Worker.find_by_key(key, connection=job.connection)
        if worker is None or worker.pid == os.getpid():
            return
        send_stop_job_command(job.connection, job.id, serializer=job.serializer)
    except (RedisError, InvalidJobOperation, NoSuchJobError, ValueError):
        logger.warning("progress_ui: could not ask RQ to stop job %s", job.id)
        return
    time.sleep(STOP_WAIT)  # the worker kills this process meanwhile


def _key(session_id: str, task_id: str) -> str:
    return f"{current_settings().KEY_PREFIX}:rq:{session_id}:{task_id}"


def _enqueue(
    session: ProgressSession,
    task_ids: list[str],
    queue: Queue,
    path: str,
    *call: Any,
    **options: Any,
) -> Job:
    """``queue.enqueue_call(path, *call, **options)``, noting in the progress cache
    (for a day) which job runs these tasks, for :func:`_cancel_job`."""
    try:
        job = queue.enqueue_call(path, *call, **options)
    except RedisError as exc:
        raise QueueUnavailable(f"The RQ queue {queue.name!r} cannot be reached: {exc}") from exc
    try:
        found = {_key(session.session_id, t): (queue.name, job.id) for t in task_ids}
        caches[current_settings().CACHE_ALIAS].set_many(found, 24 * 3600)
    except Exception:
        logger.warning("progress_ui: could not record RQ job %s for cancel", job.id)
    return job


@receiver(task_cancelled, dispatch_uid="progress_ui.contrib.rq.cancel")
def _cancel_job(sender: object, session: ProgressSession, task_id: str, **_: Any) -> None:
    """A cancelled task's queued job is cancelled in RQ (CANCELED, never runs); a
    running one stops itself at its next step (see ``stop_current_job``)."""
    try:
        found = caches[current_settings().CACHE_ALIAS].get(_key(session.session_id, task_id))
        if found is None:
            return
        queue_name, job_id = found
        queue = get_queue(queue_name)
        job = Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
        if job.get_status() in _WAITING:
            job.cancel()
            if job.func_name == _RUNNER_JOB:  # it carries every task of the session
                session.cancel()
    except (NoSuchJobError, InvalidJobOperation):
        return
    except Exception:
        logger.warning("progress_ui: could not cancel the RQ job of task %r", task_id)


# -- the "rq" runner of the view mixins (PROGRESS_UI["RUNNER"]) ------------------------


#: The queue (in django-rq's ``RQ_QUEUES``) of the ``"rq"`` runner's jobs.
RUNNER_QUEUE = "default"
_RUNNER_JOB = "progress_ui.contrib.rq.run_progress_job"


def run_progress_job(reference: SessionReference, job: str, kwargs: dict[str, Any]) -> JobOutcome:
    """Worker side: ``progress_ui.engine.work.run_job``; a job stopped by a cancel
    ends STOPPED in RQ, one that raised FAILED."""
    outcome = run_job(reference, job, kwargs)
    if outcome == "cancelled":
        stop_current_job(get_current_job())
    return outcome


def submit_job(session: ProgressSession, job: str, kwargs: dict[str, Any]) -> Job:
    """The ``"rq"`` runner: enqueue the job on django-rq's ``"default"`` queue."""
    args = (session.to_reference(), job, kwargs)
    return _enqueue(session, list(session.tasks), get_queue(RUNNER_QUEUE), _RUNNER_JOB, args)
