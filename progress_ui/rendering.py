"""HTML for sessions: the whole component, and the per-region ``<hx-partial>``
fragments that SSE messages carry.

A session renders as regions with globally unique ids: a summary (overall
bar), a live status line (``role="status"``), and one region per task. The
initial render and every SSE message fill those regions from the same
templates (``progress_ui/summary.html``, ``status.html``, ``bar_inner.html``), so
an update swaps in exactly what a fresh page load would show.

Everything user-supplied (task names, messages) goes through Django's
autoescaping; nothing here marks it safe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import formats
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext

from .conf import current as current_settings
from .session import ProgressSession
from .snapshot import SessionSnapshot, TaskSnapshot, is_settled
from .sse import DONE_EVENT
from .status import ReportedStatus

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = [
    "BarDisplay",
    "SessionDisplay",
    "htmx_version",
    "region_id",
    "render_bar",
    "render_partials",
    "render_session",
    "session_display",
    "snapshot_of",
]

SUMMARY_REGION = "summary"
STATUS_REGION = "status"
#: Task ids never contain ":", so task regions cannot collide with other regions.
TASK_REGION_PREFIX = "task:"


def region_id(session_id: str, region: str) -> str:
    """Globally unique element id of one region (``summary``, ``status`` or
    ``task:<task id>``) of one session."""
    return f"progress-{session_id}-{region}"


def task_region(session_id: str, task_id: str) -> str:
    return region_id(session_id, TASK_REGION_PREFIX + task_id)


# -- display models ------------------------------------------------------------


@dataclass(frozen=True)
class BarDisplay:
    """Everything ``progress_ui/bar_inner.html`` shows for one bar."""

    #: Element id prefix for the bar's parts; empty for a standalone bar (no ids).
    dom_id: str
    name: str
    status: ReportedStatus
    percent: int
    message: str
    simulated: bool
    #: "120 of 300", or "" when the task reports no counts.
    count_text: str
    status_label: str
    #: For ``aria-valuetext``: the percent in words plus counts and state.
    value_text: str
    #: "Step 3 of 12: invoices.csv", or "".
    step_text: str = ""
    #: "60% of the job" when tasks have different weights, else "".
    share_text: str = ""
    #: "about 2 minutes left · 120/s · 3 minutes elapsed", "took 40 seconds", "".
    timing_text: str = ""

    @property
    def is_error(self) -> bool:
        return self.status is ReportedStatus.ERROR

    @property
    def is_complete(self) -> bool:
        return self.status is ReportedStatus.COMPLETE


@dataclass(frozen=True)
class SessionDisplay:
    """Everything the session templates show; built from one snapshot."""

    session_id: str
    status: str
    finished: bool
    expired: bool
    overall_percent: int
    overall_value_text: str
    summary_id: str
    status_id: str
    status_label: str
    #: The sentence in the live region; changes only when the state does.
    status_text: str
    done_count: int
    task_count: int
    tasks: tuple[tuple[str, BarDisplay], ...]

    @property
    def show_overall(self) -> bool:
        return self.task_count > 1


def _clamp_percent(value: object) -> int:
    try:
        number = int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return max(0, min(100, number))


def _one_line_breaks(text: object) -> str:
    # A CR inside an SSE data field would end the field: keep only LF line breaks.
    return str(text or "").replace("\r\n", "\n").replace("\r", "\n")


def _number(value: float) -> str:
    shown: float = int(value) if float(value).is_integer() else round(value, 1)
    return formats.number_format(shown, force_grouping=True)


def _reported(status: object) -> ReportedStatus:
    # Standalone bars take any text; unknown values show as running.
    try:
        return ReportedStatus(str(status))
    except ValueError:
        return ReportedStatus.RUNNING


def status_label(status: str, *, expired: bool = False) -> str:
    if expired:
        return gettext("Expired")
    labels = {
        ReportedStatus.PENDING: gettext("Waiting"),
        ReportedStatus.RUNNING: gettext("In progress"),
        ReportedStatus.COMPLETE: gettext("Complete"),
        ReportedStatus.ERROR: gettext("Failed"),
        ReportedStatus.CANCELLED: gettext("Cancelled"),
    }
    try:
        return labels[ReportedStatus(status)]
    except ValueError:
        return str(status)


def count_text(current: float | None, total: float | None) -> str:
    if current is None:
        return ""
    if total:
        return gettext("%(current)s of %(total)s") % {
            "current": _number(current),
            "total": _number(total),
        }
    return _number(current)


def step_text(step: int | None, steps: int | None, name: str = "") -> str:
    """ "Step 3 of 12: invoices.csv", "Step 3", or just the name."""
    if step is None:
        return _one_line_breaks(name)
    if steps:
        text = gettext("Step %(step)s of %(steps)s") % {"step": step, "steps": steps}
    else:
        text = gettext("Step %(step)s") % {"step": step}
    if name:
        return gettext("%(step)s: %(name)s") % {"step": text, "name": _one_line_breaks(name)}
    return text


def duration_text(seconds: float) -> str:
    """ "40 seconds", "3 minutes", "1 hour 5 minutes" (whole units, rounded)."""
    total = round(seconds)
    if total < 60:
        return ngettext("%(n)s second", "%(n)s seconds", total) % {"n": total}
    whole_minutes = round(total / 60)
    minutes, hours = whole_minutes % 60, whole_minutes // 60
    text = ngettext("%(n)s minute", "%(n)s minutes", minutes) % {"n": minutes}
    if not hours:
        return text
    hours_text = ngettext("%(n)s hour", "%(n)s hours", hours) % {"n": hours}
    return hours_text if not minutes else f"{hours_text} {text}"


def timing_text(
    *,
    status: str,
    rate: float | None = None,
    eta: float | None = None,
    stalled: bool = False,
    started_at: float | None = None,
    finished_at: float | None = None,
    now: float | None = None,
) -> str:
    """Time left, rate and elapsed time of a running task; how long a finished
    one took. Elapsed time under a minute is left out, and over one it counts
    whole minutes, so the text does not change with every second."""
    parts: list[str] = []
    if finished_at is not None and started_at is not None and status != ReportedStatus.RUNNING:
        if _reported(status) is ReportedStatus.COMPLETE:
            return gettext("took %(duration)s") % {
                "duration": duration_text(finished_at - started_at)
            }
        return ""
    if _reported(status) is not ReportedStatus.RUNNING:
        return ""
    if stalled:
        parts.append(gettext("stalled"))
    elif eta is not None:
        parts.append(gettext("about %(duration)s left") % {"duration": duration_text(eta)})
    if rate is not None and not stalled:
        parts.append(gettext("%(rate)s/s") % {"rate": _number(rate)})
    if started_at is not None:
        passed = (time.time() if now is None else now) - started_at
        if passed >= 60:
            minutes = 60 * (int(passed) // 60)
            parts.append(gettext("%(duration)s elapsed") % {"duration": duration_text(minutes)})
    return " · ".join(parts)


def share_text(weight: float, total_weight: float) -> str:
    """ "60% of the job": a weighted task's share of the overall percent."""
    share = round(100 * weight / total_weight) if total_weight else 0
    return gettext("%(percent)s of the job") % {"percent": f"{share}%"}


def make_bar(
    *,
    name: str,
    status: str = ReportedStatus.RUNNING,
    percent: object = 0,
    message: str = "",
    simulated: bool = False,
    current: float | None = None,
    total: float | None = None,
    dom_id: str = "",
    expired: bool = False,
    step: int | None = None,
    steps: int | None = None,
    step_name: str = "",
    share: str = "",
    timing: str = "",
) -> BarDisplay:
    """A :class:`BarDisplay` from plain values (used for tasks and standalone bars)."""
    pct = _clamp_percent(percent)
    shown = _reported(status)
    label = status_label(status, expired=expired)
    counts = count_text(current, total)
    parts = [gettext("%(percent)s percent") % {"percent": pct}]
    if counts:
        parts.append(counts)
    parts.append(label)
    return BarDisplay(
        dom_id=dom_id,
        name=_one_line_breaks(name),
        status=shown,
        percent=pct,
        message=_one_line_breaks(message),
        simulated=bool(simulated) and shown is ReportedStatus.RUNNING,
        count_text=counts,
        status_label=label,
        value_text=", ".join(parts),
        step_text=step_text(step, steps, step_name),
        share_text=share,
        timing_text=timing,
    )


def _task_bar(
    session_id: str, task_id: str, task: TaskSnapshot, expired: bool, share: str
) -> BarDisplay:
    return make_bar(
        name=task["name"],
        status=task["status"],
        percent=task["percent"],
        message=task["message"],
        simulated=task["simulated"],
        current=task["current"],
        total=task["total"],
        dom_id=task_region(session_id, task_id),
        expired=expired,
        step=task.get("step"),
        steps=task.get("steps"),
        step_name=task.get("step_name", ""),
        share=share,
        timing=timing_text(
            status=task["status"],
            rate=task.get("rate"),
            eta=task.get("eta"),
            stalled=task.get("stalled", False),
            started_at=task.get("started_at"),
            finished_at=task.get("finished_at"),
        ),
    )


def _status_text(snapshot: SessionSnapshot, done: int, total: int) -> str:
    if snapshot["expired"]:
        return gettext("This progress is no longer available.")
    status = ReportedStatus(snapshot["status"])
    tasks = snapshot["tasks"]
    if status is ReportedStatus.ERROR:
        failed = [t for t in tasks.values() if t["status"] == ReportedStatus.ERROR]
        first = failed[0] if failed else None
        if first is None:
            return gettext("Failed.")
        if total == 1:
            return gettext("Failed: %(message)s") % {"message": _one_line_breaks(first["message"])}
        return gettext("%(name)s failed: %(message)s") % {
            "name": _one_line_breaks(first["name"]),
            "message": _one_line_breaks(first["message"]),
        }
    if status is ReportedStatus.CANCELLED:
        return gettext("Cancelled.")
    if status is ReportedStatus.COMPLETE:
        return ngettext("Complete.", "All %(count)s tasks complete.", total) % {"count": total}
    if status is ReportedStatus.PENDING:
        return gettext("Waiting to start.")
    return ngettext(
        "%(done)s of %(count)s task finished.", "%(done)s of %(count)s tasks finished.", total
    ) % {"done": done, "count": total}


def session_display(snapshot: SessionSnapshot) -> SessionDisplay:
    """The display model of one snapshot (pure: no I/O, no settings)."""
    sid = snapshot["session_id"]
    expired = bool(snapshot["expired"])
    weights = [task.get("weight", 1.0) for task in snapshot["tasks"].values()]
    total_weight = sum(weights)
    weighted = len(set(weights)) > 1
    tasks = tuple(
        (
            task_id,
            _task_bar(
                sid,
                task_id,
                task,
                expired,
                share_text(task.get("weight", 1.0), total_weight) if weighted else "",
            ),
        )
        for task_id, task in snapshot["tasks"].items()
    )
    done = sum(1 for _, bar in tasks if bar.status.is_final)
    overall = _clamp_percent(snapshot["overall_percent"])
    status = snapshot["status"]
    return SessionDisplay(
        session_id=sid,
        status=status,
        finished=is_settled(snapshot),
        expired=expired,
        overall_percent=overall,
        overall_value_text=gettext("%(percent)s percent, %(state)s")
        % {"percent": overall, "state": status_label(status, expired=expired)},
        summary_id=region_id(sid, SUMMARY_REGION),
        status_id=region_id(sid, STATUS_REGION),
        status_label=status_label(status, expired=expired),
        status_text=_status_text(snapshot, done, len(tasks)),
        done_count=done,
        task_count=len(tasks),
        tasks=tasks,
    )


# -- settings and URLs -----------------------------------------------------------


def htmx_version(value: int | str | None = None) -> int:
    """2 or 4: ``value`` if given, else ``PROGRESS_UI["HTMX_VERSION"]``."""
    raw = current_settings().HTMX_VERSION if value in (None, "") else value
    try:
        version = int(raw)
    except (TypeError, ValueError):
        version = 0
    if version not in (2, 4):
        raise ImproperlyConfigured(f"PROGRESS_UI['HTMX_VERSION'] must be 2 or 4, got {raw!r}.")
    return version


def progress_url(name: str, session_id: str) -> str:
    """``reverse("progress_ui:<name>")`` with a hint when the URLs are missing."""
    try:
        return reverse(f"progress_ui:{name}", kwargs={"session_id": session_id})
    except NoReverseMatch as exc:
        raise ImproperlyConfigured(
            f"Cannot reverse 'progress_ui:{name}': add "
            "path('progress/', include('progress_ui.urls')) to your URLconf."
        ) from exc


def snapshot_of(session: ProgressSession | SessionSnapshot) -> SessionSnapshot:
    """Accept a ``ProgressSession`` (read now) or an already-read snapshot."""
    if isinstance(session, dict):
        return session
    if isinstance(session, ProgressSession):
        return session.to_dict()
    raise TypeError(f"Expected a ProgressSession or a snapshot dict, got {type(session).__name__}.")


# -- rendering ---------------------------------------------------------------------


def _render(template: str, context: dict[str, Any], request: HttpRequest | None = None) -> str:
    return render_to_string(template, context, request=request)


def _from_htmx(request: HttpRequest | None) -> bool:
    if request is None:
        return False
    return bool(getattr(request, "htmx", False)) or request.headers.get("HX-Request") == "true"


def render_partials(
    snapshot: SessionSnapshot, previous: SessionSnapshot | None = None
) -> SafeString:
    """One ``<hx-partial>`` per region, the payload of one SSE message. Each
    partial's inner HTML equals what :func:`render_session` puts in that region.

    With ``previous`` (the snapshot this viewer was last sent), only the bars that
    show something else now, plus the summary and status regions: a change to
    one task of a hundred sends one bar, not a hundred."""
    display = session_display(snapshot)
    if previous is not None and previous["session_id"] == snapshot["session_id"]:
        shown = dict(session_display(previous).tasks)
        changed = tuple((t, bar) for t, bar in display.tasks if shown.get(t) != bar)
        display = replace(display, tasks=changed)
    return SafeString(_render("progress_ui/partials.html", {"display": display}).strip())


def render_session(
    session: ProgressSession | SessionSnapshot,
    *,
    request: HttpRequest | None = None,
    title: str = "",
    htmx: int | str | None = None,
    refresh_url: str | None = None,
    transport: str = "sse",
    cancellable: bool = False,
) -> SafeString:
    """The whole component: regions inside an element that connects to the SSE
    stream (no connection once the session has finished), plus a ``<noscript>``
    refresh for browsers without JavaScript.

    While the session runs, the component also names its polling URL
    (``data-progress-poll``): ``progress_ui.js`` switches to it when the SSE
    connection keeps failing. ``transport="poll"`` renders that polled form,
    without an SSE connection.

    ``refresh_url`` is where a no-JS browser reloads the state; by default the
    current page for a GET request, else the HTML fragment endpoint.

    ``cancellable=True`` adds a Cancel button (a CSRF-protected POST to
    ``progress_ui:cancel``; pass ``request`` so the form carries the token)
    while the session runs.
    """
    snapshot = snapshot_of(session)
    display = session_display(snapshot)
    context: dict[str, Any] = {
        "display": display,
        "title": title,
        "htmx_version": htmx_version(htmx),
        "sse_url": "",
        "poll_url": "",
        "refresh_url": "",
        "cancel_url": "",
        "next_url": "",
        "done_event": DONE_EVENT,
    }
    if not display.finished:
        if transport != "poll":
            context["sse_url"] = progress_url("sse", display.session_id)
        context["poll_url"] = progress_url("fragment", display.session_id) + "?transport=poll"
        if cancellable:
            context["cancel_url"] = progress_url("cancel", display.session_id)
            if request is not None and request.method in ("GET", "HEAD"):
                context["next_url"] = request.get_full_path()
        # htmx parses responses with scripting off: a <noscript> meta refresh in a
        # swapped-in fragment would come alive and reload the page. So only
        # full-page renders get the no-JS refresh.
        if not _from_htmx(request):
            if refresh_url is None:
                if request is not None and request.method in ("GET", "HEAD"):
                    refresh_url = request.get_full_path()
                else:
                    refresh_url = progress_url("fragment", display.session_id)
            context["refresh_url"] = refresh_url
    return SafeString(_render("progress_ui/session.html", context, request).strip())


def render_bar(
    *,
    name: str,
    percent: object = 0,
    status: str = ReportedStatus.RUNNING,
    message: str = "",
    simulated: bool = False,
    current: float | None = None,
    total: float | None = None,
) -> SafeString:
    """A standalone bar (not connected to any stream), e.g. for server-rendered
    progress that a page computes itself."""
    bar = make_bar(
        name=name,
        status=status,
        percent=percent,
        message=message,
        simulated=simulated,
        current=current,
        total=total,
    )
    return SafeString(_render("progress_ui/bar.html", {"bar": bar}).strip())
