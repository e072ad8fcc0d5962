"""What a settled session hands the page: its result links, and the ``detail`` of
the events ``progress_ui.js`` dispatches when it settles (``progress:complete``,
``progress:error``, ``progress:cancelled``).

A task that completed may carry a result: a link (``result_url``) and its text
(``result_label``) in its snapshot. Only links a page can safely follow are
kept: a path on this site, or an ``http``/``https`` address (never
``javascript:`` or ``data:``), of bounded length. Pure functions of plain
values: no I/O, no templates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext

from progress_ui.core.validation import url_problem

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger("progress_ui")

#: Longest result label shown (links: ``core.validation.MAX_URL_LENGTH``).
MAX_LABEL_LENGTH = 200

__all__ = [
    "MAX_LABEL_LENGTH",
    "Result",
    "TaskOutcome",
    "detail_json",
    "safe_url",
    "same_site_url",
    "task_result",
]


@dataclass(frozen=True)
class Result:
    """A link a finished task hands the page."""

    task_id: str
    url: str
    label: str


@dataclass(frozen=True)
class TaskOutcome:
    """One task as the event ``detail`` reports it."""

    task_id: str
    status: str
    percent: int
    result: Result | None = None


def safe_url(value: object) -> str:
    """``value`` if it is a link a page may follow (``core.validation.url_problem``:
    relative, or absolute ``http``/``https``), else ""."""
    if url_problem(value) is not None:
        return ""
    assert isinstance(value, str)
    return value.strip()


def task_result(task_id: str, task: Mapping[str, object]) -> Result | None:
    """The result of a completed task, if it carries a safe link."""
    if task.get("status") != "complete":
        return None
    url = safe_url(task.get("result_url"))
    if not url:
        return None
    raw_label = task.get("result_label")
    label = " ".join(str(raw_label or "").split())[:MAX_LABEL_LENGTH]
    return Result(task_id, url, label or gettext("Open the result"))


def detail_json(
    *,
    session_id: str,
    status: str,
    percent: int,
    expired: bool,
    tasks: Iterable[TaskOutcome],
) -> str:
    """The ``detail`` of the settle event, as JSON text: the session id, its
    status and percent, each task's status and percent, and the result links
    (``result`` is the first, or null)."""
    listed = list(tasks)
    results = [
        {"task": t.task_id, "url": t.result.url, "label": t.result.label}
        for t in listed
        if t.result is not None
    ]
    detail = {
        "sessionId": session_id,
        "status": status,
        "percent": percent,
        "expired": expired,
        "tasks": {t.task_id: {"status": t.status, "percent": t.percent} for t in listed},
        "result": results[0] if results else None,
        "results": results,
    }
    return json.dumps(detail, separators=(",", ":"), ensure_ascii=False)


def same_site_url(url: str | None, request: HttpRequest | None) -> str:
    """``url`` if it stays on this site (Django's ``url_has_allowed_host_and_scheme``
    with the request's host, and https when the request is), else "" with a
    warning: where the browser goes once a session completes."""
    if not url:
        return ""
    allowed = {request.get_host()} if request is not None else set()
    secure = request.is_secure() if request is not None else False
    if url_has_allowed_host_and_scheme(url, allowed_hosts=allowed, require_https=secure):
        return url
    logger.warning("progress_ui: success URL %r is not on this site; it is ignored", url[:200])
    return ""
