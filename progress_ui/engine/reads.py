"""Reading a session: its state from the store, worker loss, and the aggregates of a
snapshot.

A read (``store.read_all``) is one round trip and writes nothing. Noticing that
the process running a task has stopped (``progress_ui.engine.liveness``), or
that a queued job failed before it started (``progress_ui.engine.queued``), is a
write, and only :class:`LostWorkers` does it, by name: ``ProgressSession.read``
and its callers mark lost workers as viewers always have, through it.

The aggregates (``status``, ``has_error``...) are pure functions of one snapshot,
so a caller holding a snapshot reads nothing more to get them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from progress_ui.conf import current as current_settings
from progress_ui.core.messages import JOB_NOT_STARTED
from progress_ui.core.records import TaskRecord
from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.core.status import ProgressStatus, ReportedStatus
from progress_ui.core.validation import log_id
from progress_ui.engine import liveness, queued, store
from progress_ui.engine.plans import Plan, arun, run

logger = logging.getLogger("progress_ui")

#: What a read of the session found: its description (None if it is gone) and
#: the record of every task, as ``store.read_all`` returns them.
SessionState = store.SessionState


def runners(records: dict[str, TaskRecord]) -> dict[str, str]:
    """Task id -> runner token of the RUNNING tasks whose runner is known."""
    return {
        t: runner
        for t, r in records.items()
        if r["status"] == ProgressStatus.RUNNING and (runner := r.get("runner"))
    }


#: The plan that ends a task as ERROR with a message, only while ``only_runner``
#: runs it; True if it stored it (``TaskWriter.finish``).
FinishLost = Callable[..., Plan[bool]]


def pending(records: dict[str, TaskRecord]) -> list[str]:
    """Task ids of the PENDING tasks (their records found)."""
    return [t for t, r in records.items() if r["status"] == ProgressStatus.PENDING]


class LostWorkers:
    """Marks ERROR the RUNNING tasks of one session whose process stopped beating,
    and the PENDING ones whose queued job its queue reports failed
    (``progress_ui.engine.queued``): the work that nothing would ever end."""

    def __init__(self, session_id: str, task_ids: list[str], finish: FinishLost) -> None:
        self.session_id = session_id
        self.task_ids = task_ids
        self.finish = finish

    def mark(self, state: SessionState) -> SessionState:
        """``state``, read again if some of its RUNNING tasks had lost their
        process, or some PENDING ones their queued job (they are marked ERROR
        first). Costs no read of the session otherwise: at most one liveness
        read per runner, and one check of the queued jobs of the session, per
        ``WORKER_BEAT_INTERVAL`` in this process."""
        marked = False
        found = runners(state[1])
        if found:
            dead = liveness.dead_runners(set(found.values()))
            marked = bool(dead) and run(self._mark(state[1], dead))
        failed = queued.failed(self.session_id, pending(state[1]))
        if failed:
            marked = run(self._mark_not_started(failed)) or marked
        return store.read_all(self.session_id, self.task_ids) if marked else state

    async def amark(self, state: SessionState) -> SessionState:
        """Async :meth:`mark`."""
        marked = False
        found = runners(state[1])
        if found:
            dead = await liveness.adead_runners(set(found.values()))
            marked = bool(dead) and await arun(self._mark(state[1], dead))
        failed = await queued.afailed(self.session_id, pending(state[1]))
        if failed:
            marked = await arun(self._mark_not_started(failed)) or marked
        if marked:
            return await store.aread_all(self.session_id, self.task_ids)
        return state

    def _mark_not_started(self, task_ids: list[str]) -> Plan[bool]:
        """Mark ERROR those of ``task_ids`` still PENDING; True if any."""
        marked = False
        for task_id in task_ids:
            ended = yield from self.finish(
                task_id, ProgressStatus.ERROR, JOB_NOT_STARTED, only_pending=True
            )
            if ended:
                marked = True
                logger.warning(
                    "progress_ui: the queue reports that the job of task %r of session %s "
                    "failed before it started (can the worker import it?)",
                    task_id,
                    log_id(self.session_id),
                )
        return marked

    def _mark(self, records: dict[str, TaskRecord], dead: set[str]) -> Plan[bool]:
        """Mark ERROR the RUNNING tasks whose runner is in ``dead``; True if any."""
        message = current_settings().WORKER_LOST_MESSAGE
        marked = False
        for task_id, runner in runners(records).items():
            if runner not in dead:
                continue
            logger.warning(
                "progress_ui: task %r of session %s lost its worker %s",
                task_id,
                log_id(self.session_id),
                runner,
            )
            if (yield from self.finish(task_id, ProgressStatus.ERROR, message, only_runner=runner)):
                marked = True
        return marked


# -- aggregates of one snapshot --------------------------------------------------------


def statuses(snap: SessionSnapshot) -> list[ReportedStatus]:
    return [ReportedStatus(t["status"]) for t in snap["tasks"].values()]


def status_of(snap: SessionSnapshot) -> ProgressStatus:
    """ERROR > CANCELLED > COMPLETE (every task) > RUNNING > PENDING."""
    return ProgressStatus(snap["status"])


def has_error(snap: SessionSnapshot) -> bool:
    return ReportedStatus.ERROR in statuses(snap)


def is_complete(snap: SessionSnapshot) -> bool:
    return all(s is ReportedStatus.COMPLETE for s in statuses(snap))


def is_running(snap: SessionSnapshot) -> bool:
    """True while any task is RUNNING or COMPLETING (reported as running)."""
    return ReportedStatus.RUNNING in statuses(snap)
