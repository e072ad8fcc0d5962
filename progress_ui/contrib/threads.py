"""Where a job runs: ``PROGRESS_UI["RUNNER"]`` (or a view's ``progress_runner``).

A runner is a function ``submit(session, job_path, kwargs)`` that arranges for
``work.run_job(session.to_reference(), job_path, kwargs)`` to run somewhere:

- ``"threads"``: a thread pool in this (web) process. Fine for development and
  small sites; the work dies with the process (a deploy, a worker timeout).
- ``"django_tasks"``: Django's task framework (``django.tasks`` on Django 6, the
  ``django-tasks`` backport on 5.2), run by its workers (``db_worker``...).
- ``"celery"``: a Celery worker (``pip install django-progress-ui[celery]``).
- ``"rq"``, ``"dramatiq"``: an RQ or Dramatiq worker (their extras likewise).

Or a dotted path to your own ``submit``. The integrations live in
``progress_ui.contrib`` and are loaded by name, only when chosen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections
from django.utils.module_loading import import_string

from progress_ui.engine.session import ProgressSession, SessionReference
from progress_ui.engine.work import JobOutcome, run_job

#: ``submit(session, job_path, kwargs)``: starts a job somewhere.
Submit = Callable[[ProgressSession, str, dict[str, Any]], object]


class QueueUnavailable(Exception):
    """A runner could not hand a job to its queue because the queue cannot be
    reached right now (a broker or database down); trying again later may work.
    Raised by the runners here, and welcome from your own ``submit``: the view
    mixins answer it with ``503`` and ``Retry-After``."""


RUNNERS = {
    "threads": "progress_ui.contrib.threads.submit_to_threads",
    "django_tasks": "progress_ui.contrib.django_tasks.submit_job",
    "celery": "progress_ui.contrib.celery.submit_job",
    "rq": "progress_ui.contrib.rq.submit_job",
    "dramatiq": "progress_ui.contrib.dramatiq.submit_job",
}

#: Worker threads of the default executor (one per running job).
DEFAULT_MAX_WORKERS = 8
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def default_executor() -> Executor:
    """The process-wide thread pool of the ``"threads"`` runner."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=DEFAULT_MAX_WORKERS, thread_name_prefix="progress_ui"
            )
        return _executor


def run_in_thread(
    reference: SessionReference, job: str, kwargs: dict[str, Any], submitter: int
) -> JobOutcome:
    """``run_job`` in a pool thread: the job's Future holds its outcome, or the
    exception that failed it. An ``async def`` job runs in an event loop of the
    thread's own, for the time of the job."""
    try:
        return run_job(reference, job, kwargs)
    finally:
        # A pool thread's database connections are not closed by any request
        # cycle; an executor that runs inline shares the request's, left open.
        if threading.get_ident() != submitter:
            close_old_connections()


def submit_to_threads(
    session: ProgressSession,
    job: str,
    kwargs: dict[str, Any],
    executor: Executor | None = None,
) -> object:
    """The ``"threads"`` runner: ``run_job`` in ``executor`` (default: the shared pool)."""
    pool = executor or default_executor()
    return pool.submit(run_in_thread, session.to_reference(), job, kwargs, threading.get_ident())


def get_runner(name: str) -> Submit:
    """The submit function named ``name`` (a key of :data:`RUNNERS` or a dotted path)."""
    path = RUNNERS.get(name, name)
    try:
        submit: Submit = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"Cannot load the progress runner {name!r} ({path}): {exc}. Use one of "
            f"{', '.join(map(repr, RUNNERS))} or a dotted path to submit(session, job, kwargs); "
            "'celery' needs `pip install django-progress-ui[celery]` ('rq', 'dramatiq' likewise), "
            "'django_tasks' "
            "needs Django 6 or `pip install django-tasks`."
        ) from exc
    return submit
