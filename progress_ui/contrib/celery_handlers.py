"""What progress_ui does in Celery's hooks and signal handlers: the progress
tasks a message carries, writes that never raise into a worker, the end of a
task stopped by a cancel, unknown tasks, and revoking a cancelled task's
queued message. Used by ``progress_ui.contrib.celery``, which imports this
module (so its receivers are connected in every process that loads it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from celery import Task, current_app
from celery.exceptions import Ignore
from celery.signals import task_unknown
from django.dispatch import receiver

from progress_ui.conf import current as current_settings
from progress_ui.core.validation import log_id
from progress_ui.engine import store
from progress_ui.engine.session import ProgressSession
from progress_ui.signals import task_cancelled

if TYPE_CHECKING:
    from kombu.message import Message

logger = logging.getLogger("progress_ui")


# -- shared by the hooks ---------------------------------------------------------


def task_target(args: Any) -> tuple[str, str] | None:
    """(session id, task id) from a progress task's arguments, if they are there."""
    if isinstance(args, list | tuple) and len(args) >= 2:
        session_id, task_id = args[0], args[1]
        if isinstance(session_id, str) and isinstance(task_id, str):
            return session_id, task_id
    return None


def safely(
    action: str, target: tuple[str, str], write: Callable[[ProgressSession], object]
) -> None:
    """Run a progress write from a Celery handler: a failure there (the cache is
    down, the task id is wrong) is logged, never raised into the worker."""
    try:
        session = ProgressSession.get(target[0])
        if session is not None and target[1] in session.tasks:
            write(session)
    except Exception:
        logger.exception(
            "progress_ui could not %s task %r of session %s", action, target[1], log_id(target[0])
        )


def stop_as_revoked(task: Task[Any, Any]) -> NoReturn:
    """End a task that a cancel stopped as Celery ends a revoked one: REVOKED in
    the result backend (when there is one and the task keeps results), and one
    INFO line from the worker ("ignored") rather than "succeeded", or a failure
    with a traceback. (A monitor fed by events, Flower, sees no end event.)"""
    request = task.request
    if request.id and not request.is_eager and not task.ignore_result:
        try:
            task.backend.mark_as_revoked(request.id, "cancelled", request=request)
        except Exception:
            logger.warning("progress_ui: could not record the cancel of %s", request.id)
    raise Ignore()


# -- a task the worker does not know -------------------------------------------------


@task_unknown.connect(weak=False)
def _on_task_unknown(sender: object = None, message: Message | None = None, **_: Any) -> None:
    """A worker received a task it does not have (web and worker on different
    code; Celery logs "Received unregistered task" and drops the message): when
    the message is a progress task's or a progress job's, its tasks end in error
    now instead of staying pending until the session expires."""
    for session_id, task_id in _message_targets(message):

        def end(session: ProgressSession, task_id: str = task_id) -> None:
            session.error(task_id)

        safely("record the unknown task of", (session_id, task_id), end)


def _message_targets(message: Message | None) -> list[tuple[str, str]]:
    """(session id, task id) of each progress task a message was sent for: the
    two leading arguments of a progress task, or every task of a job's session."""
    try:
        payload = message.payload if message is not None else None
    except Exception:
        return []
    # Celery's message protocol 2: (args, kwargs, embed); protocol 1: a dict.
    args = payload.get("args") if isinstance(payload, dict) else None
    if isinstance(payload, list | tuple) and payload:
        args = payload[0]
    target = task_target(args)
    return [target] if target is not None else job_targets(args)


def job_targets(args: Any) -> list[tuple[str, str]]:
    """(session id, task id) of every task of a job's session, from the job
    task's arguments ``(reference, job, kwargs)``."""
    if isinstance(args, list | tuple) and args and isinstance(args[0], dict):
        session_id, tasks = args[0].get("session_id"), args[0].get("tasks")
        if isinstance(session_id, str) and isinstance(tasks, list):
            pairs = [t for t in tasks if isinstance(t, list | tuple) and t]
            return [(session_id, str(t[0])) for t in pairs]
    return []


# -- cancelling from the page revokes queued messages --------------------------------


def remember(session: ProgressSession, task_id: str, celery_id: str) -> None:
    """Note the Celery id of a task's message, for :func:`_revoke_on_cancel`."""
    try:
        store.remember_job(session.session_id, task_id, celery_id, current_settings().TTL)
    except store.CacheUnavailable:
        logger.warning("progress_ui: could not record Celery task %s for cancel", celery_id)


@receiver(task_cancelled, dispatch_uid="progress_ui.contrib.celery.revoke")
def _revoke_on_cancel(sender: object, session: ProgressSession, task_id: str, **_: Any) -> None:
    """A cancelled task's queued message is revoked, so no worker starts it (a
    worker that starts it anyway finds the task cancelled and runs nothing)."""
    try:
        celery_id = store.job_reference(session.session_id, task_id)
    except store.CacheUnavailable:
        return
    if celery_id is not None:
        current_app.control.revoke(celery_id)
