"""Jobs waiting in a task queue: a PENDING task whose job its queue reports failed
ends in error.

A worker that cannot import a task (web and worker on different code) fails the
job in its queue without running a line of progress_ui: nothing reports to the
session, and its bar would stay "pending" until the session expires. Waiting
longer proves nothing (a busy worker reaches a queued job late, and that is no
failure), so readers ask the queue itself. A runner whose queue keeps each
job's outcome (Django Tasks with a backend that ``supports_get_result``, such
as django-tasks-db) remembers the job with its task when it enqueues it
(:func:`remember`, one cache write), and registers a :class:`Probe` that asks
the queue whether that job failed (:func:`register`).

Readers (``ProgressSession.read`` and every stream's poller, through
``reads.LostWorkers``) call :func:`failed` with the session's PENDING tasks: at
most once per ``WORKER_BEAT_INTERVAL`` per session in each process, and never at
the first read of a session there (a one-off read stays one round trip), one
cache read of the remembered jobs, then one question to the queue per job. A task the
queue reports FAILED while its bar is still PENDING is marked ERROR with
``core.messages.JOB_NOT_STARTED``; a queued or running job is left alone, however
long it waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from progress_ui.conf import current as current_settings
from progress_ui.core.validation import log_id
from progress_ui.engine import store

logger = logging.getLogger("progress_ui")

#: What a runner remembers of a queued job (JSON): ``{"runner": name, ...}`` and
#: the runner's own fields (Django Tasks: the backend alias and the result id).
QueuedJob = dict[str, str]


@dataclass(frozen=True)
class Probe:
    """Asks a runner's queue about a job: True when it reports that the job failed."""

    failed: Callable[[QueuedJob], bool]
    afailed: Callable[[QueuedJob], Awaitable[bool]]


#: Runner name -> its probe.
_probes: dict[str, Probe] = {}
#: Session id -> ``time.monotonic()`` before which it is not checked again.
_next_check: dict[str, float] = {}
_MAX_SESSIONS = 10_000
#: At most one warning per this many seconds about probes that raise.
_WARN_EVERY = 60.0
_warned_at = -_WARN_EVERY


def register(runner: str, probe: Probe) -> None:
    """Let readers ask ``runner``'s queue about the jobs it remembered."""
    _probes[runner] = probe


def remember(session_id: str, task_id: str, job: QueuedJob) -> None:
    """Keep ``job`` (with its ``"runner"``) as the queued job of ``task_id``, for
    as long as a session lives without a write (``TTL``). A cache that cannot
    be reached only logs a warning: the job is enqueued already."""
    try:
        store.remember_queued(session_id, task_id, job, current_settings().TTL)
    except store.CacheUnavailable as exc:
        logger.warning(
            "progress_ui: could not record the queued job of session %s: %s",
            log_id(session_id),
            exc,
        )


async def aremember(session_id: str, task_id: str, job: QueuedJob) -> None:
    """Async :func:`remember`."""
    try:
        await store.aremember_queued(session_id, task_id, job, current_settings().TTL)
    except store.CacheUnavailable as exc:
        logger.warning(
            "progress_ui: could not record the queued job of session %s: %s",
            log_id(session_id),
            exc,
        )


def _due(session_id: str, pending: list[str]) -> bool:
    """True when the session's PENDING tasks should be checked now (and note it).
    Not at the first read of the session in this process: a one-off read (a
    page, a status request) stays one round trip; a follower (a stream, a
    polling viewer) checks from its next read one interval later."""
    if not pending or not _probes:
        return False
    now = time.monotonic()
    due = _next_check.get(session_id)
    if due is not None and now < due:
        return False
    if len(_next_check) >= _MAX_SESSIONS:
        _next_check.clear()
    _next_check[session_id] = now + current_settings().WORKER_BEAT_INTERVAL
    return due is not None


def _probe_of(job: object) -> Probe | None:
    runner = job.get("runner") if isinstance(job, dict) else None
    return _probes.get(runner) if isinstance(runner, str) else None


def _probe_failed(session_id: str, exc: Exception) -> None:
    # A queue that cannot answer (its database is down, say) must not break the
    # viewers: the check is skipped, with a warning now and then.
    global _warned_at
    now = time.monotonic()
    if now - _warned_at >= _WARN_EVERY:
        _warned_at = now
        logger.warning(
            "progress_ui: could not ask the queue about the jobs of session %s: %s: %s",
            log_id(session_id),
            type(exc).__name__,
            exc,
        )


def failed(session_id: str, pending: list[str]) -> list[str]:
    """Those of ``pending`` (PENDING tasks) whose remembered job its queue reports
    failed; nothing when the session was checked less than
    ``WORKER_BEAT_INTERVAL`` ago in this process."""
    if not _due(session_id, pending):
        return []
    found = []
    for task_id, job in store.queued_jobs(session_id, pending).items():
        probe = _probe_of(job)
        if probe is None:
            continue
        try:
            if probe.failed(job):
                found.append(task_id)
        except Exception as exc:
            _probe_failed(session_id, exc)
    return found


async def afailed(session_id: str, pending: list[str]) -> list[str]:
    """Async :func:`failed`."""
    if not _due(session_id, pending):
        return []
    found = []
    for task_id, job in (await store.aqueued_jobs(session_id, pending)).items():
        probe = _probe_of(job)
        if probe is None:
            continue
        try:
            if await probe.afailed(job):
                found.append(task_id)
        except Exception as exc:
            _probe_failed(session_id, exc)
    return found
