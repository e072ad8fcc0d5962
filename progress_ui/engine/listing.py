"""Listing the sessions in the progress cache, for operators: the staff page
(``progress_ui.views.StaffView``) and ``manage.py progress list``.

Sessions come from the session index (``progress_ui.engine.store.index``), which
works on every cache: the newest ``INDEX_SIZE`` sessions created, newest first.
Entries whose session is gone (expired, deleted) are skipped. With LocMemCache
the index, like the sessions, lives in one process: a listing shows only the
sessions that process created.

A listing shows every session, whoever owns it, with its full id: it is for
someone who has the cache, or the staff permission.
"""

from __future__ import annotations

from dataclasses import dataclass

from progress_ui.conf import current as current_settings
from progress_ui.engine import store
from progress_ui.engine.session import ProgressSession


@dataclass(frozen=True)
class Listed:
    """A stored session, as the index lists it (its state is not read yet)."""

    session_id: str
    #: When the session was created (seconds since the epoch).
    created_at: float
    meta: store.SessionMeta

    @property
    def owner(self) -> str | None:
        return self.meta["owner"]

    def session(self) -> ProgressSession:
        return ProgressSession(self.session_id, self.meta)


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    #: A ``ReportedStatus`` value, or "expired" when the session vanished while listed.
    status: str
    overall_percent: int
    task_count: int
    #: "user:<pk>", "browser" (an anonymous visitor) or "" (no owner: anyone with the id).
    owner: str
    created_at: float = 0.0


def supports_listing() -> bool:
    """True unless the session index is turned off (``INDEX_SIZE`` 0)."""
    return current_settings().INDEX_SIZE > 0


def recent_sessions() -> list[Listed]:
    """The indexed sessions still stored, newest first: two reads of the index
    and of the sessions' descriptions (in chunks), however many there are.
    Raises ``store.CacheUnavailable`` when the cache cannot be reached."""
    entries = store.indexed()
    metas = store.load_metas([entry.session_id for entry in entries])
    return [
        Listed(entry.session_id, entry.created_at, metas[entry.session_id])
        for entry in entries
        if entry.session_id in metas
    ]


def owner_kind(owner: str | None) -> str:
    """What an owner token says to an operator: "user:<pk>" as it is, "browser"
    for an anonymous visitor (the keyed hash says nothing), "" for no owner."""
    if owner is None:
        return ""
    kind = owner.partition(":")[0]
    return owner if kind == "user" else kind


def list_sessions(limit: int | None = None) -> list[SessionSummary]:
    """A summary of each listed session (the newest ``limit``), newest first;
    each costs one read of its state."""
    found: list[SessionSummary] = []
    for listed in recent_sessions()[:limit]:
        snap = listed.session().to_dict()
        found.append(
            SessionSummary(
                session_id=listed.session_id,
                status="expired" if snap["expired"] else snap["status"],
                overall_percent=snap["overall_percent"],
                task_count=len(snap["tasks"]),
                owner=owner_kind(listed.owner),
                created_at=listed.created_at,
            )
        )
    return found
