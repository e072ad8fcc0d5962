"""What the staff page shows of each listed session: one :class:`StaffRow` per
session, from its index entry and one snapshot (``progress_ui.views.StaffView``).

Every text a site or a visitor chose (owner tokens, user names, task names,
messages) is cleaned and cut short here, and escaped by the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.translation import gettext, ngettext

from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.core.status import ReportedStatus
from progress_ui.core.validation import clean_text
from progress_ui.engine.listing import Listed
from progress_ui.engine.ownership import BROWSER_PREFIX, USER_PREFIX
from progress_ui.render.display import duration_text, own_text, status_label

#: Longest owner shown (a user name, or an ``owner=`` token as it was given).
MAX_OWNER_LENGTH = 80
#: Task names shown per row, and the longest of each.
TASK_NAMES_SHOWN = 3
MAX_TASK_NAME_LENGTH = 60
#: Longest message shown under a row's status.
MAX_MESSAGE_LENGTH = 160


@dataclass(frozen=True)
class StaffRow:
    session_id: str
    owner: str
    #: "Import products, Send emails (+2 more)".
    tasks: str
    #: A ``ReportedStatus`` value, or "expired".
    status: str
    status_label: str
    percent: int
    #: The failed task's message, else a running task's, or "".
    message: str
    #: "2 minutes", "stalled" or "" (unknown, or not running).
    time_left: str
    started: datetime

    @property
    def settled(self) -> bool:
        """Nothing in the row will change any more (finished, or expired)."""
        return self.status not in (ReportedStatus.PENDING, ReportedStatus.RUNNING)


def owner_label(owner: str | None, users: Mapping[str, str]) -> str:
    """Who owns a session, for an operator: the user's name (``users``: primary
    key -> name), "Anonymous visitor", "Anyone with the link", or the token."""
    if owner is None:
        return gettext("Anyone with the link")
    if owner.startswith(BROWSER_PREFIX):
        return gettext("Anonymous visitor")
    pk = owner.removeprefix(USER_PREFIX) if owner.startswith(USER_PREFIX) else None
    # A deleted user, or an owner= token of the site's own, shows as it is.
    shown = users.get(pk, owner) if pk is not None else owner
    return clean_text(shown, MAX_OWNER_LENGTH).replace("\n", " ")


def _one_line(text: str, limit: int) -> str:
    return " ".join(clean_text(text, limit).split())


def tasks_text(names: list[str]) -> str:
    shown = ", ".join(_one_line(name, MAX_TASK_NAME_LENGTH) for name in names[:TASK_NAMES_SHOWN])
    more = len(names) - TASK_NAMES_SHOWN
    if more <= 0:
        return shown
    return ngettext("%(tasks)s (+%(count)s more)", "%(tasks)s (+%(count)s more)", more) % {
        "tasks": shown,
        "count": more,
    }


def time_left(snapshot: SessionSnapshot) -> str:
    """The longest time left of the running tasks, "stalled" when one is and none
    has an estimate, "" when nothing is known."""
    running = [t for t in snapshot["tasks"].values() if t["status"] == ReportedStatus.RUNNING]
    etas = [t["eta"] for t in running if t["eta"] is not None]
    if etas:
        return duration_text(max(etas))
    return gettext("stalled") if any(t["stalled"] for t in running) else ""


def _message(snapshot: SessionSnapshot) -> str:
    tasks = list(snapshot["tasks"].values())
    for wanted in (ReportedStatus.ERROR, ReportedStatus.RUNNING):
        for task in tasks:
            if task["status"] == wanted and task["message"]:
                return _one_line(own_text(task["message"]), MAX_MESSAGE_LENGTH)
    return ""


def staff_row(listed: Listed, snapshot: SessionSnapshot, users: Mapping[str, str]) -> StaffRow:
    """The row of ``listed``, whose state is ``snapshot``."""
    expired = snapshot["expired"]
    return StaffRow(
        session_id=listed.session_id,
        owner=owner_label(listed.owner, users),
        tasks=tasks_text([task["name"] for task in snapshot["tasks"].values()]),
        status="expired" if expired else snapshot["status"],
        status_label=status_label(snapshot["status"], expired=expired),
        percent=max(0, min(100, int(snapshot["overall_percent"]))),
        message=_message(snapshot),
        time_left=time_left(snapshot),
        started=datetime.fromtimestamp(listed.created_at, tz=UTC),
    )
