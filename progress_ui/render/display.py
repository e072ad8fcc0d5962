"""What a session shows, as plain data: the display models of the templates.

:func:`session_display` turns a snapshot into a :class:`SessionDisplay` (one
:class:`BarDisplay` per task) with every text already worded and translated;
the templates (``progress_ui.render.components``) and the wire fragments
(``progress_ui.render.payload``) only lay it out. No I/O, no templates; recent
displays and bars are kept, as long as the settings do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import formats
from django.utils.translation import get_language, gettext, ngettext

from progress_ui.conf import gettext_noop
from progress_ui.core.messages import own_message
from progress_ui.core.snapshot import SessionSnapshot, TaskSnapshot, is_settled
from progress_ui.core.status import ReportedStatus
from progress_ui.engine.store import now as store_now
from progress_ui.render.outcome import Result, TaskOutcome, detail_json, task_result

SUMMARY_REGION = "summary"
STATUS_REGION = "status"
#: What a settled session hands the page: result links and the settle event's detail.
OUTCOME_REGION = "outcome"
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
    #: The percent is an estimate (the easing curve), not a measure: assistive
    #: technology hears the state, not the number (no ``aria-valuenow``).
    simulated: bool
    #: Running with nothing to estimate from (counts without a total, or a
    #: standalone bar given no percent): a sliding bar, and no number at all.
    indeterminate: bool
    #: "120 of 300", or "" when the task reports no counts.
    count_text: str
    status_label: str
    #: For ``aria-valuetext``: the percent in words (when measured) plus counts
    #: and state.
    value_text: str
    #: "Step 3 of 12: invoices.csv", or "".
    step_text: str = ""
    #: "60% of the job" when tasks have different weights, else "".
    share_text: str = ""
    #: "about 2 minutes left · 120/s · 3 minutes elapsed", "took 40 seconds", "".
    timing_text: str = ""
    #: The link a completed task hands the page, if any.
    result: Result | None = None

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
    #: Tasks that failed, and that were cancelled (of every task, even in a
    #: display that carries only the changed bars).
    failed_count: int = 0
    cancelled_count: int = 0
    outcome_id: str = ""
    #: JSON ``detail`` of the settle event; "" while the session runs.
    outcome_detail: str = ""
    #: Result links of the completed tasks, in task order.
    results: tuple[Result, ...] = ()
    #: What the page's title shows for it, when the component opts in: "42%"
    #: while it runs, its state ("Waiting", "Complete", "Failed"...) otherwise,
    #: or while nothing is measured.
    title_text: str = ""

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
    try:
        return gettext(_LABELS[ReportedStatus(status)])
    except ValueError:
        return str(status)


#: Untranslated (looked up one at a time: a translation lookup is not free).
_LABELS = {
    ReportedStatus.PENDING: gettext_noop("Waiting"),
    ReportedStatus.RUNNING: gettext_noop("In progress"),
    ReportedStatus.COMPLETE: gettext_noop("Complete"),
    ReportedStatus.ERROR: gettext_noop("Failed"),
    ReportedStatus.CANCELLED: gettext_noop("Cancelled"),
}


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
        passed = (store_now() if now is None else now) - started_at
        if passed >= 60:
            minutes = 60 * (int(passed) // 60)
            parts.append(gettext("%(duration)s elapsed") % {"duration": duration_text(minutes)})
    return " · ".join(parts)


def share_text(weight: float, total_weight: float) -> str:
    """ "60% of the job": a weighted task's share of the overall percent."""
    share = round(100 * weight / total_weight) if total_weight else 0
    return gettext("%(percent)s of the job") % {"percent": f"{share}%"}


def own_text(message: str) -> str:
    """A message progress_ui wrote itself (``core.messages``) in the viewer's
    language; any other message as written."""
    found = own_message(message)
    if found is None:
        return message
    msgid, numbers = found
    text = gettext(msgid)
    if not numbers:
        return text
    try:
        return text.format(**numbers)
    except (KeyError, IndexError, ValueError):
        # A project's own catalogue (LOCALE_PATHS) with a broken field: the
        # English text beats a failed render.
        return message


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
    result: Result | None = None,
) -> BarDisplay:
    """A :class:`BarDisplay` from plain values (used for tasks and standalone bars).
    ``percent=None`` on a running bar: nothing is measured (indeterminate)."""
    pct = _clamp_percent(percent)
    shown = _reported(status)
    running = shown is ReportedStatus.RUNNING
    estimated = bool(simulated) and running
    unmeasured = running and (percent is None or (estimated and current is not None and not total))
    label = status_label(status, expired=expired)
    counts = count_text(current, total)
    # An estimate is no measure: the accessible value says the state, not a number.
    parts = [] if estimated or unmeasured else [gettext("%(percent)s percent") % {"percent": pct}]
    if counts:
        parts.append(counts)
    parts.append(label)
    return BarDisplay(
        dom_id=dom_id,
        name=_one_line_breaks(name),
        status=shown,
        percent=pct,
        message=_one_line_breaks(own_text(message)),
        simulated=estimated and not unmeasured,
        indeterminate=unmeasured,
        count_text=counts,
        status_label=label,
        value_text=", ".join(parts),
        step_text=step_text(step, steps, step_name),
        share_text=share,
        timing_text=timing,
        result=result if shown is ReportedStatus.COMPLETE else None,
    )


def _task_bar(
    session_id: str, task_id: str, task: TaskSnapshot, expired: bool, share: str, now: float
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
            now=now,
        ),
        # From the snapshot's result_url / result_label, when the task has them.
        result=task_result(task_id, task),
    )


#: Bars built recently, by everything they show: the language, the task's region,
#: whether the session expired, its share text, the whole minutes it has run (the
#: elapsed time shown) and the task's fields. A session of 100 tasks changes one
#: task at a time, so its next display builds one bar and finds the other 99 here.
_bars: dict[tuple[object, ...], BarDisplay] = {}
_BARS = 4096


def _bar_of(
    session_id: str, task_id: str, task: TaskSnapshot, expired: bool, share: str, now: float
) -> BarDisplay:
    started = task.get("started_at")
    passed = now - started if started is not None else 0.0
    minutes = int(passed) // 60 if passed >= 60 else 0
    key = (get_language(), session_id, task_id, expired, share, minutes, *task.items())
    try:
        found = _bars.get(key)
    except TypeError:  # a value that cannot be a key (not one a snapshot holds)
        return _task_bar(session_id, task_id, task, expired, share, now)
    if found is None:
        if len(_bars) >= _BARS:
            _bars.clear()
        found = _bars[key] = _task_bar(session_id, task_id, task, expired, share, now)
    return found


@receiver(setting_changed)
def _forget(**kwargs: object) -> None:
    # Numbers and words follow the settings (formats, languages): build them again.
    _bars.clear()
    _recent.clear()


def _status_text(snapshot: SessionSnapshot, done: int, total: int) -> str:
    if snapshot["expired"]:
        return gettext("This progress is no longer available.")
    status = ReportedStatus(snapshot["status"])
    tasks = snapshot["tasks"]
    if status is ReportedStatus.ERROR:
        # The error's text shows under the failed bar: said once, not here again.
        failed = [t for t in tasks.values() if t["status"] == ReportedStatus.ERROR]
        if total == 1 or not failed:
            return gettext("Failed.")
        if len(failed) > 1:
            return ngettext("%(count)s task failed.", "%(count)s tasks failed.", len(failed)) % {
                "count": len(failed)
            }
        return gettext("%(name)s failed.") % {"name": _one_line_breaks(failed[0]["name"])}
    if status is ReportedStatus.CANCELLED:
        return gettext("Cancelled.")
    if status is ReportedStatus.COMPLETE:
        return ngettext("Complete.", "All %(count)s tasks complete.", total) % {"count": total}
    if status is ReportedStatus.PENDING:
        return gettext("Waiting to start.")
    return ngettext(
        "%(done)s of %(count)s task finished.", "%(done)s of %(count)s tasks finished.", total
    ) % {"done": done, "count": total}


#: The displays of recent snapshots, by (id of the snapshot, language); each
#: entry keeps its snapshot alive so the id cannot be reused meanwhile. A change
#: sent as a delta needs the display of the snapshot sent before, built already.
_recent: dict[tuple[int, str | None], tuple[SessionSnapshot, SessionDisplay]] = {}
_RECENT = 256


def session_display(snapshot: SessionSnapshot) -> SessionDisplay:
    """The display model of one snapshot (pure: no I/O, no settings). Snapshots
    are not changed once built, so the display of a recent one is kept."""
    key = (id(snapshot), get_language())
    found = _recent.get(key)
    if found is not None and found[0] is snapshot:
        return found[1]
    display = _build_display(snapshot)
    if len(_recent) >= _RECENT:
        _recent.clear()
    _recent[key] = (snapshot, display)
    return display


def _build_display(snapshot: SessionSnapshot) -> SessionDisplay:
    sid = snapshot["session_id"]
    expired = bool(snapshot["expired"])
    weights = [task.get("weight", 1.0) for task in snapshot["tasks"].values()]
    total_weight = sum(weights)
    weighted = len(set(weights)) > 1
    now = store_now()  # the clock the task's times were read from
    tasks = tuple(
        (
            task_id,
            _bar_of(
                sid,
                task_id,
                task,
                expired,
                share_text(task.get("weight", 1.0), total_weight) if weighted else "",
                now,
            ),
        )
        for task_id, task in snapshot["tasks"].items()
    )
    done = sum(1 for _, bar in tasks if bar.status.is_final)
    overall = _clamp_percent(snapshot["overall_percent"])
    status = snapshot["status"]
    finished = is_settled(snapshot)
    results = tuple(bar.result for _, bar in tasks if bar.result is not None)
    label = status_label(status, expired=expired)
    measured = status == ReportedStatus.RUNNING and not all(bar.indeterminate for _, bar in tasks)
    detail = ""
    if finished:
        detail = detail_json(
            session_id=sid,
            status=status,
            percent=overall,
            expired=expired,
            tasks=(
                TaskOutcome(task_id, bar.status.value, bar.percent, bar.result)
                for task_id, bar in tasks
            ),
        )
    return SessionDisplay(
        session_id=sid,
        status=status,
        finished=finished,
        expired=expired,
        overall_percent=overall,
        overall_value_text=gettext("%(percent)s percent, %(state)s")
        % {"percent": overall, "state": label},
        summary_id=region_id(sid, SUMMARY_REGION),
        status_id=region_id(sid, STATUS_REGION),
        status_label=label,
        status_text=_status_text(snapshot, done, len(tasks)),
        done_count=done,
        task_count=len(tasks),
        tasks=tasks,
        failed_count=sum(1 for _, bar in tasks if bar.status is ReportedStatus.ERROR),
        cancelled_count=sum(1 for _, bar in tasks if bar.status is ReportedStatus.CANCELLED),
        outcome_id=region_id(sid, OUTCOME_REGION),
        outcome_detail=detail,
        results=results,
        title_text=f"{overall}%" if measured and not finished else label,
    )
