"""The writes of a session: what each transition changes in a task's record, and
how a change reaches the store (:class:`TaskWriter`).

A change is a function that edits a copy of the task's record in place and says
whether it changed it; the store backend applies it to what is stored
(compare-and-set on Redis, get/modify/set elsewhere). Every method here is a
plan (``progress_ui.engine.plans``): the same code serves ``update()`` and
``aupdate()``, run with blocking or with awaited I/O. Progress (start, update,
detach) goes to the task's progress key; an ending (complete, error, cancel) to
its end key, where the first ending wins.

Whatever the last write of a task did, this process stops running the task once
it has ended: an ending that is stored, one that finds the task already ended,
and one the cache did not take all release the process's claim
(``progress_ui.engine.liveness``). An ending the cache did not take is kept, and
the liveness thread stores it once the cache is back (while this process lives).

Every time written here (a start, a sample, an ending) is read from the store's
clock (``store.now()``), not this machine's: readers on other machines compare
those times with their own reading of the same clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

from progress_ui.conf import current as current_settings
from progress_ui.core.estimate import add_sample
from progress_ui.core.records import TaskRecord, reading_at
from progress_ui.core.snapshot import build_snapshot, is_settled
from progress_ui.core.status import ProgressStatus
from progress_ui.core.validation import check_result_url, clean_text, log_id
from progress_ui.engine import held, liveness, store
from progress_ui.engine.plans import Plan, io, run
from progress_ui.exceptions import TaskCancelled

logger = logging.getLogger("progress_ui")

#: What a transition does to a task's record at ``now``; True if it changed it.
Transition = Callable[[TaskRecord, float], bool]

#: How far ahead a write sets its floor (seconds): readers between the write's
#: read and its landing must not see more than the write keeps.
_WRITE_LEAD = 0.05
#: Seconds between two "progress was not saved" warnings of one process.
_LOST_WRITE_WARNING_INTERVAL = 10.0
_last_lost_write_warning = -_LOST_WRITE_WARNING_INTERVAL


def _lost(record: TaskRecord, known: TaskRecord) -> bool:
    """True when ``record`` (what the store has) is a task never started although
    ``known`` (what this writer made of it) had started: the store lost it."""
    return (
        record["status"] == ProgressStatus.PENDING
        and record["started_at"] is None
        and known["started_at"] is not None
    )


def _cancelled(task_id: str) -> TaskCancelled:
    return TaskCancelled(f"Task {task_id!r} was cancelled.")


def _apply(r: TaskRecord, fields: held.Fields, now: float, limit: int) -> None:
    """Set the update ``fields`` (numbers checked already) on record ``r``."""
    if (current := fields.get("current")) is not None:
        r["current"] = current
        # Samples ride on writes that happen anyway: no write per tick.
        r["samples"] = add_sample(r.get("samples", []), now, float(current))
    if (total := fields.get("total")) is not None:
        r["total"] = total
    if (percent := fields.get("percent")) is not None:
        r["percent"] = min(100.0, float(percent))
    if (step := fields.get("step")) is not None:
        r["step"] = int(step)
    if (steps := fields.get("steps")) is not None:
        r["steps"] = int(steps)
    if (message := fields.get("message")) is not None:
        r["message"] = clean_text(message, limit)
    if (step_name := fields.get("step_name")) is not None:
        r["step_name"] = clean_text(step_name, limit)


class TaskWriter:
    """Stores the transitions of one session object's tasks.

    The plan ``on_stored(ended)`` runs after every stored change (the child roll-up)."""

    def __init__(
        self,
        session_id: str,
        meta: store.SessionMeta,
        on_stored: Callable[[bool], Plan[None]],
    ) -> None:
        self.session_id = session_id
        self.meta = meta
        self.task_ids = [t for t, _ in meta["tasks"]]
        self.on_stored = on_stored
        #: The store backend's memory of this writer's last versions.
        self.memo: dict[str, Any] = {}
        #: The record this writer last made of each task it started: what it
        #: knows of the task, should the store lose it (:meth:`_change`).
        self.known: dict[str, TaskRecord] = {}
        #: When each task's progress was last stored (monotonic): ``held`` holds
        #: updates that come sooner than ``UPDATE_WRITE_INTERVAL`` after it.
        self.stored_at: dict[str, float] = {}

    # -- the transitions ------------------------------------------------------------

    def message_limit(self) -> int:
        """Longest message of a task: ``MAX_MESSAGE_LENGTH``, and the session's text
        budget shared among its tasks."""
        conf = current_settings()
        return min(conf.MAX_MESSAGE_LENGTH, max(1, conf.MAX_SESSION_TEXT // len(self.task_ids)))

    def claim(self, task_id: str, record: TaskRecord) -> None:
        # This process runs the task from now on: readers watch its liveness.
        record["runner"] = liveness.claim(self.session_id, self.task_ids, task_id)

    def start(self, task_id: str) -> Plan[None]:
        yield from self.store_held(task_id)

        def change(r: TaskRecord, now: float) -> bool:
            status = ProgressStatus(r["status"])
            if status is ProgressStatus.CANCELLED:
                raise _cancelled(task_id)
            if status.is_final:
                raise ValueError(
                    f"Task {task_id!r} already finished ({status.value}); "
                    "create a new session to run it again."
                )
            if status is ProgressStatus.PENDING:
                r["status"] = ProgressStatus.RUNNING.value
                r["started_at"] = now
                r["floor"] = 0.0
            elif (
                status is not ProgressStatus.RUNNING or r.get("runner") == liveness.process_token()
            ):
                return False
            self.claim(task_id, r)
            return True

        yield from self.write(task_id, change, claims=True)

    def offer_update(
        self,
        task_id: str,
        *,
        current: float | None,
        total: float | None,
        percent: float | None,
        step: float | None,
        steps: float | None,
        message: str | None,
        step_name: str | None,
    ) -> held.Fields | None:
        """The first half of an update, without I/O (the second is
        :meth:`store_update`): the fields to store now, or None when they are
        held (``progress_ui.engine.held``). Raises what storing held fields of
        the task raised meanwhile."""
        fields: held.Fields = {}
        if current is not None:
            fields["current"] = current
        if total is not None:
            fields["total"] = total
        if percent is not None:
            fields["percent"] = percent
        if step is not None:
            fields["step"] = step
        if steps is not None:
            fields["steps"] = steps
        if message is not None:
            fields["message"] = message
        if step_name is not None:
            fields["step_name"] = step_name
        return held.offer(self, self.session_id, task_id, fields)

    def store_update(self, task_id: str, fields: held.Fields) -> Plan[bool]:
        """Store update ``fields`` (from :meth:`offer_update`); True when stored."""
        limit = self.message_limit()

        def change(r: TaskRecord, now: float) -> bool:
            status = ProgressStatus(r["status"])
            if status is ProgressStatus.CANCELLED:
                raise _cancelled(task_id)
            if status.work_ended:
                return False
            if status is ProgressStatus.PENDING:
                r["status"] = ProgressStatus.RUNNING.value
                r["started_at"] = now
            if status is ProgressStatus.PENDING or r.get("runner") != liveness.process_token():
                self.claim(task_id, r)
            _apply(r, fields, now, limit)
            return True

        return (yield from self.write(task_id, change, claims=True))

    def store_held(self, task_id: str) -> Plan[None]:
        """Store the update fields held for ``task_id``, if any (before a transition)."""
        fields = held.take(self.session_id, task_id)
        if fields:
            yield from self.store_update(task_id, fields)

    def detach(self, task_id: str) -> Plan[None]:
        yield from self.store_held(task_id)

        def change(r: TaskRecord, now: float) -> bool:
            if r["status"] != ProgressStatus.RUNNING or r.get("runner") is None:
                return False
            r["runner"] = None
            return True

        yield from self.write(task_id, change)
        liveness.release(self.session_id, task_id)

    def complete(
        self, task_id: str, message: str | None, result: tuple[str, str] | None = None
    ) -> Plan[bool]:
        """COMPLETING, with ``message`` and ``result`` (a link and its text, for
        the page) when given."""
        yield from store.sync_clock()
        at = store.now()  # when it ended, even if the cache takes it later
        text = None if message is None else clean_text(message, self.message_limit())
        link = None
        if result is not None:
            url, label = result
            link = (check_result_url(url), clean_text(label, self.message_limit()))

        def change(r: TaskRecord, now: float) -> bool:
            if ProgressStatus(r["status"]).work_ended:
                return False
            if r["started_at"] is None:
                r["started_at"] = at
            r["status"] = ProgressStatus.COMPLETING.value
            r["finished_at"] = at
            if text is not None:
                r["message"] = text
            if link is not None:
                r["result_url"], r["result_label"] = link
            return True

        return (yield from self.end(task_id, change))

    def finish(
        self,
        task_id: str,
        status: ProgressStatus,
        message: str,
        *,
        only_runner: str | None = None,
        only_pending: bool = False,
    ) -> Plan[bool]:
        """End the task as ERROR or CANCELLED with ``message`` (cleaned here); with
        ``only_runner``, only while that process still runs it; with
        ``only_pending``, only while it has not started."""
        yield from store.sync_clock()
        at = store.now()
        text = clean_text(message, self.message_limit())

        def change(r: TaskRecord, now: float) -> bool:
            if ProgressStatus(r["status"]).work_ended:
                return False  # it has ended already (a completing bar included)
            if only_runner is not None and (
                r["status"] != ProgressStatus.RUNNING or r.get("runner") != only_runner
            ):
                return False  # another process took the task over meanwhile
            if only_pending and r["status"] != ProgressStatus.PENDING:
                return False  # it started meanwhile: its runner ends it
            r["status"] = status.value
            r["finished_at"] = at
            r["message"] = text
            if r["started_at"] is None:
                r["started_at"] = at
            return True

        stored = yield from self.end(task_id, change)
        if stored and status is ProgressStatus.CANCELLED:
            # A job of this process stops at its next update(), held or not.
            held.mark_cancelled(self.session_id, task_id)
        return stored

    # -- how a change reaches the store -----------------------------------------------

    def _change(
        self, task_id: str, transition: Transition, held_fields: held.Fields | None = None
    ) -> store.Change:
        """``transition`` with the record's floor first raised to what shows a
        moment from now, so the bar never moves backwards whatever the change
        does to the inputs (the lead covers the time the write takes to land).

        A task this writer has started, found never started, was lost by the
        store (a Redis that restarted empty): the change starts again from what
        this writer last made of it (its true start time, counts, samples and
        floor), not from nothing, so the session it stores again shows the
        task's real duration and progress.

        ``held_fields``: the updates held back for the task (an ending stores
        them), set before ``transition``, as if they had been stored just before."""
        limit = self.message_limit()

        def change(record: TaskRecord) -> bool:
            known = self.known.get(task_id)
            if known is not None and _lost(record, known):
                restored = cast("dict[str, Any]", record)
                restored.clear()
                restored.update(known)
            now = store.now()
            conf = current_settings()
            shown = reading_at(record, now + _WRITE_LEAD, conf)
            record["floor"] = max(record["floor"], shown.percent)
            if held_fields and not ProgressStatus(record["status"]).work_ended:
                # Set after the floor, as their own write would have: held
                # fields that make the percent unknown (total=0) then read as
                # the floor, not as the easing curve from nothing.
                _apply(record, held_fields, now, limit)
                shown = reading_at(record, now + _WRITE_LEAD, conf)
                record["floor"] = max(record["floor"], shown.percent)
            try:
                changed = transition(record, now)
            except TaskCancelled:
                liveness.release(self.session_id, task_id)  # this process stops running it
                raise
            status = ProgressStatus(record["status"])
            if changed and status is ProgressStatus.RUNNING:
                # What it knows of the running task; an ending is not kept here:
                # an ending retried after a loss must apply to the running task.
                self.known[task_id] = cast(TaskRecord, dict(record))
            return changed

        return change

    def write(self, task_id: str, transition: Transition, *, claims: bool = False) -> Plan[bool]:
        """Store a progress change; True when it was stored. A cache that cannot
        be reached loses it (see :meth:`lost_write`); what ``transition`` raises
        (bad input, a cancelled task) propagates. ``claims``: the change may
        name this process as the task's runner (it beats first, when due)."""
        conf = current_settings()
        try:
            if claims:
                yield from liveness.beat_if_due()
            written = yield from store.update(
                self.session_id,
                self.meta,
                task_id,
                self._change(task_id, transition),
                ttl=conf.TTL,
                memo=self.memo,
            )
        except store.CacheUnavailable as exc:
            return self.lost_write(exc)
        if written.ended:
            liveness.release(self.session_id, task_id)  # ended elsewhere: not ours to run
        if not written.stored:
            return False
        yield from self.on_stored(False)
        return True

    def end(self, task_id: str, transition: Transition) -> Plan[bool]:
        """Store an ending, with the updates held back for the task
        (``progress_ui.engine.held``); True when this one was stored (it had not
        ended)."""
        change = self._change(task_id, transition, held.take(self.session_id, task_id))
        # What this writer last saw of the task is about to be stale: the next
        # progress write must read the ending (and refuse or raise on it).
        self.memo.pop(task_id, None)
        try:
            return (yield from self._store_ending(task_id, change))
        except store.CacheUnavailable as exc:
            # Kept before the claim goes, so the liveness thread (which stores it
            # once the cache is back, with blocking I/O) keeps beating meanwhile.
            liveness.keep_ending(
                self.session_id,
                task_id,
                lambda: run(self._store_ending(task_id, change, retry=True)),
            )
            return self.lost_write(exc)
        finally:
            liveness.release(self.session_id, task_id)

    def _store_ending(
        self, task_id: str, change: store.Change, *, retry: bool = False
    ) -> Plan[bool]:
        written = yield from store.end_task(
            self.session_id, self.meta, task_id, change, ttl=current_settings().TTL
        )
        if not written.stored:
            return False  # it had ended meanwhile: that ending stands
        try:
            yield from self.keep_if_finished()
        except store.CacheUnavailable as exc:
            # The ending is stored; only its longer lifetime was lost.
            if retry:
                logger.warning(
                    "progress_ui: could not renew session %s: %s", log_id(self.session_id), exc
                )
            else:
                self.lost_write(exc)
        yield from self.on_stored(True)
        return True

    def keep_if_finished(self) -> Plan[None]:
        """Once the session has settled, give it its post-finish lifetime
        (``FINISHED_TTL``).

        Settled as it will read once completing bars are done: a task completed
        just now reads "running" for ``COMPLETING_DURATION``, but nothing will
        write again to renew it then. Every writer stores its own record before
        reading the others, so the last of concurrent finishers always sees the
        session as settled. The description is this object's own (it never
        changes), not the one read back: that key may have just expired (a cache
        that stores expiry to the second can drop it early), and the write that
        finished the session has just renewed it anyway."""
        conf = current_settings()
        _, records = yield io(store.read_all, store.aread_all, self.session_id, self.task_ids)
        names = {t: n for t, n in self.meta["tasks"]}
        settled_at = store.now() + conf.COMPLETING_DURATION
        later = build_snapshot(
            self.session_id, names, records, settled_at, conf, self.meta.get("weights")
        )
        if is_settled(later):
            ended = {t: r for t, r in records.items() if ProgressStatus(r["status"]).work_ended}
            yield io(
                store.renew_finished,
                store.arenew_finished,
                self.session_id,
                self.meta,
                ended,
                conf.FINISHED_TTL,
            )

    def lost_write(self, exc: store.CacheUnavailable) -> bool:
        """A write the cache did not take: raise under ``STRICT_WRITES``, else warn
        (at most once per ``_LOST_WRITE_WARNING_INTERVAL`` per process) and go on,
        so progress never fails the job it reports on. Returns False (not stored)."""
        global _last_lost_write_warning
        if current_settings().STRICT_WRITES:
            raise exc
        now = time.monotonic()
        if now - _last_lost_write_warning >= _LOST_WRITE_WARNING_INTERVAL:
            _last_lost_write_warning = now
            logger.warning(
                "progress_ui: progress of session %s was not saved (%s: %s); the work "
                "goes on. Set PROGRESS_UI['STRICT_WRITES'] = True to raise instead.",
                log_id(self.session_id),
                type(exc.__cause__ or exc).__name__,
                exc,
            )
        return False
