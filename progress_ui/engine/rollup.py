"""Sessions as plain data, and child sessions rolling up into a parent's task.

:func:`new_meta` checks and builds a new session's description (its tasks, owner,
weights and parent), which never changes after ``ProgressSession.create``. A
:class:`SessionReference` is what ``ProgressSession.to_reference()`` gives a
task queue (JSON); :func:`meta_of_reference` turns it back into the session's
description without reading the cache. A child session (``ProgressSession.child``)
names its parent's reference and task in its description; :class:`RollUp`
carries its progress to that task.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, NotRequired, Protocol, TypedDict

from progress_ui.conf import current as current_settings
from progress_ui.core.snapshot import build_snapshot
from progress_ui.core.status import ProgressStatus, ReportedStatus
from progress_ui.core.validation import (
    check_amount,
    clean_text,
    is_valid_session_id,
    validate_task_id,
)
from progress_ui.engine import store
from progress_ui.engine.ownership import owner_for_request
from progress_ui.engine.plans import Plan, io
from progress_ui.exceptions import UnknownTaskError

if TYPE_CHECKING:
    from django.http import HttpRequest


class SessionReference(TypedDict):
    """What :meth:`ProgressSession.to_reference` gives: JSON for task queues."""

    session_id: str
    tasks: list[list[str]]
    owner: str | None
    weights: NotRequired[dict[str, float]]
    parent: NotRequired[dict[str, Any]]
    parent_task: NotRequired[str]


def checked_weights(weights: dict[str, float], task_ids: list[str]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(task_ids))
    if unknown:
        raise UnknownTaskError(
            f"Weights for unknown tasks {', '.join(unknown)}; this session has: "
            f"{', '.join(task_ids)}"
        )
    checked = {}
    for task_id, weight in weights.items():
        value = check_amount(f"weights[{task_id!r}]", weight)
        if not value:
            raise ValueError(f"weights[{task_id!r}] must be a number above 0, got {weight!r}")
        checked[task_id] = float(value)
    return checked


def new_meta(
    tasks: dict[str, str],
    *,
    request: HttpRequest | None,
    owner: str | None,
    weights: dict[str, float] | None,
    parent: tuple[SessionReference, str] | None,
) -> store.SessionMeta:
    """The description of a new session (see ``ProgressSession.create``); bad
    input raises, saying what is allowed, before ``request`` is asked its owner."""
    conf = current_settings()
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError("tasks must be a non-empty dict of task id -> display name.")
    if len(tasks) > conf.MAX_TASKS:
        raise ValueError(
            f"A session holds at most {conf.MAX_TASKS} tasks (got {len(tasks)}); "
            "raise PROGRESS_UI['MAX_TASKS'] if you need more."
        )
    pairs = [
        [validate_task_id(t), clean_text(name, conf.MAX_NAME_LENGTH) or t]
        for t, name in tasks.items()
    ]
    names_length = sum(len(name) for _, name in pairs)
    if names_length > conf.MAX_SESSION_TEXT:
        raise ValueError(
            f"The task names hold {names_length} characters together; a session holds "
            f"at most {conf.MAX_SESSION_TEXT} (PROGRESS_UI['MAX_SESSION_TEXT'])."
        )
    if weights:
        weights = checked_weights(weights, [t for t, _ in pairs])
    if request is not None and owner is None:
        owner = owner_for_request(request)
    meta = store.SessionMeta(format=store.FORMAT, tasks=pairs, owner=owner)
    if weights:
        meta["weights"] = weights
    if parent is not None:
        meta["parent"], meta["parent_task"] = dict(parent[0]), parent[1]
    return meta


def reference_of(session_id: str, meta: store.SessionMeta) -> SessionReference:
    reference: SessionReference = {
        "session_id": session_id,
        "tasks": meta["tasks"],
        "owner": meta["owner"],
    }
    if "weights" in meta:
        reference["weights"] = meta["weights"]
    if "parent" in meta and "parent_task" in meta:
        reference["parent"] = meta["parent"]
        reference["parent_task"] = meta["parent_task"]
    return reference


def meta_of_reference(reference: SessionReference) -> tuple[str, store.SessionMeta]:
    """The session id and description a reference names (ids checked again)."""
    session_id = reference["session_id"]
    if not is_valid_session_id(session_id):
        raise ValueError(f"Not a session id: {session_id!r}")
    pairs = [[validate_task_id(t), str(name)] for t, name in reference["tasks"]]
    meta = store.SessionMeta(format=store.FORMAT, tasks=pairs, owner=reference["owner"])
    if reference.get("weights"):
        meta["weights"] = checked_weights(reference["weights"], [t for t, _ in pairs])
    if "parent" in reference and "parent_task" in reference:
        meta["parent"] = reference["parent"]
        meta["parent_task"] = reference["parent_task"]
    return session_id, meta


class ParentTask(Protocol):
    """What a roll-up drives in the parent session (``ProgressSession`` is one):
    the plans of its writes, so a child's ``aupdate()`` rolls up without blocking."""

    def plan_complete(self, task_id: str, message: str | None = None) -> Plan[None]: ...

    def plan_error(self, task_id: str, message: str | None = None) -> Plan[None]: ...

    def plan_cancel(
        self, task_id: str | None = None, message: str | None = None
    ) -> Plan[list[str]]: ...

    def plan_update(
        self,
        task_id: str,
        *,
        percent: float | None = None,
        step: int | None = None,
        steps: int | None = None,
        step_name: str | None = None,
    ) -> Plan[None]: ...


class RollUp:
    """Carries a child session's progress to its parent's task: the parent task
    shows the child's overall percent and its current sub-task as a step, and
    completes, fails or is cancelled with the child."""

    def __init__(
        self, session_id: str, meta: store.SessionMeta, parent: ParentTask, task_id: str
    ) -> None:
        self.session_id = session_id
        self.meta = meta
        self.names = {t: n for t, n in meta["tasks"]}
        self.parent = parent
        self.task_id = task_id
        self.rolled_up_at = -math.inf

    def after_write(self, ended: bool) -> Plan[None]:
        """After a stored change of the child: throttled to one roll-up per
        ``ITERATE_WRITE_INTERVAL``, except when a task ended. Raises
        ``store.CacheUnavailable`` when the child cannot be read."""
        now = time.monotonic()
        conf = current_settings()
        if not ended and now - self.rolled_up_at < conf.ITERATE_WRITE_INTERVAL:
            return
        self.rolled_up_at = now
        meta, records = yield io(store.read_all, store.aread_all, self.session_id, list(self.names))
        if meta is None:
            return
        # As it will read once completing animations are over: the parent gets no
        # further write when they end.
        settled_at = store.now() + conf.COMPLETING_DURATION
        snapshot = build_snapshot(
            self.session_id, self.names, records, settled_at, conf, self.meta.get("weights")
        )
        tasks = snapshot["tasks"]
        status = ReportedStatus(snapshot["status"])
        parent, task_id = self.parent, self.task_id
        if status is ReportedStatus.COMPLETE:
            yield from parent.plan_complete(task_id)
        elif status is ReportedStatus.ERROR:
            failed = next(t for t in tasks.values() if t["status"] == ReportedStatus.ERROR)
            yield from parent.plan_error(task_id, failed["message"])
        elif status is ReportedStatus.CANCELLED:
            yield from parent.plan_cancel(task_id)
        else:
            # Read from the records: a completing sub-task is done here, though
            # snapshots report it as running.
            done = {t for t, r in records.items() if ProgressStatus(r["status"]).work_ended}
            running = [
                t
                for t in self.names
                if t not in done and t in records and records[t]["status"] == ProgressStatus.RUNNING
            ]
            yield from parent.plan_update(
                task_id,
                percent=snapshot["overall_percent"],
                step=min(len(done) + 1, len(tasks)),
                steps=len(tasks),
                step_name=self.names[running[0]] if running else "",
            )
