"""The default markup of a session's live regions: the one definition of it.

A session's component has three kinds of region whose content every SSE message
replaces: the summary (state and overall bar), one bar per task, and the status
line. Their default markup is built here, for the page and for the stream alike
(through :mod:`progress_ui.render.regions`), so the two cannot differ. The
packaged region templates (``progress_ui/summary.html``, ``bar_inner.html``,
``status.html``) only call these functions through template tags: whatever the
template engine's options (``autoescape``, ``string_if_invalid``,
``builtins``), the default markup stays the same, and escaped.

Every value from the display models is escaped with :func:`html.escape`, which
is what ``django.utils.html.escape`` applies (without its ``SafeString``
wrapper: these strings are joined before they are marked safe, once, by the
caller). A message is built for every change of every followed session, so
this is kept to string formatting: a few microseconds a region.
"""

from __future__ import annotations

from html import escape as _escape

from django.utils.translation import gettext, ngettext

from progress_ui.render.display import BarDisplay, SessionDisplay

__all__ = ["bar_inner", "outcome", "status", "summary"]


def _span(css: str, text: str) -> str:
    return f'<span class="{css}">{_escape(text)}</span>' if text else ""


def bar_inner(bar: BarDisplay) -> str:
    """One bar's content: a task's region (with ids, from ``bar.dom_id``, so that
    htmx 2's settle step can animate the fill) or a standalone bar (no ids)."""
    pct = bar.percent
    status = _escape(bar.status)
    name = _escape(bar.name)
    if bar.dom_id:
        dom = _escape(bar.dom_id)
        name_id, fill_id = f' id="{dom}:name"', f' id="{dom}:fill"'
        labelled = f' id="{dom}:track" aria-labelledby="{dom}:name"'
    else:
        name_id = fill_id = ""
        labelled = f' aria-label="{name}"'
    look = " pui-bar--simulated" if bar.simulated else ""
    # Only a measured percent is announced as a number (ARIA: omit aria-valuenow
    # when the progress is not known); aria-valuetext then says the state.
    value_now = f' aria-valuenow="{pct}"'
    percent = f"{pct}%"
    if bar.indeterminate:
        look, value_now, percent = " pui-bar--indeterminate", "", ""
    elif bar.simulated:
        value_now = ""
    message = ""
    if bar.message:
        error = " pui-bar__message--error" if bar.is_error else ""
        message = _span(f"pui-bar__message{error}", bar.message)
    return (
        "\n"
        '<div class="pui-bar__head">\n'
        f'  <span class="pui-bar__name"{name_id}>{name}</span>\n'
        f'  <span class="pui-bar__percent" aria-hidden="true">{percent}</span>\n'
        "</div>\n"
        f'<div class="pui-bar__track pui-bar--{status}{look}"{labelled} role="progressbar"'
        f' aria-valuemin="0" aria-valuemax="100"{value_now}'
        f' aria-valuetext="{_escape(bar.value_text)}">\n'
        f'  <div class="pui-bar__fill pui-w-{pct}"{fill_id}></div>\n'
        "</div>\n"
        '<div class="pui-bar__foot">\n'
        f'  <span class="pui-bar__state pui-state--{status}">{_escape(bar.status_label)}</span>\n'
        f"  {_span('pui-bar__count', bar.count_text)}\n"
        f"  {_span('pui-bar__step', bar.step_text)}\n"
        f"  {_span('pui-bar__share', bar.share_text)}\n"
        f"  {_span('pui-bar__timing', bar.timing_text)}\n"
        f"  {message}\n"
        "</div>\n"
    )


def summary(display: SessionDisplay) -> str:
    """The summary region: the session's state, how many tasks are done and, for
    several tasks, an overall bar."""
    status = _escape(display.status)
    done, count = display.done_count, display.task_count
    # Translations are trusted text (as in a {% blocktranslate %}); the numbers are ints.
    if display.finished and display.failed_count:
        counted = ngettext(
            "%(n)s of %(count)s task failed", "%(n)s of %(count)s tasks failed", count
        ) % {"n": display.failed_count, "count": count}
    elif display.finished and display.cancelled_count:
        counted = ngettext(
            "%(n)s of %(count)s task cancelled", "%(n)s of %(count)s tasks cancelled", count
        ) % {"n": display.cancelled_count, "count": count}
    else:
        counted = ngettext(
            "%(done)s of %(count)s task done", "%(done)s of %(count)s tasks done", count
        ) % {"done": done, "count": count}
    percent = overall = ""
    if display.show_overall:
        pct = display.overall_percent
        sid = _escape(display.summary_id)
        label = _escape(gettext("Overall progress"))  # not in the f-string: xgettext skips those
        percent = f'<span class="pui-summary__percent" aria-hidden="true">{pct}%</span>'
        overall = (
            f'<div class="pui-overall pui-bar--{status}" id="{sid}:track" role="progressbar"'
            f' aria-label="{label}" aria-valuemin="0"'
            f' aria-valuemax="100" aria-valuenow="{pct}"'
            f' aria-valuetext="{_escape(display.overall_value_text)}">'
            f'<div class="pui-bar__fill pui-w-{pct}" id="{sid}:fill"></div></div>'
        )
    return (
        "\n"
        '<div class="pui-summary__head">\n'
        f'  <span class="pui-badge pui-state--{status}">{_escape(display.status_label)}</span>\n'
        f'  <span class="pui-summary__count">{counted}</span>\n'
        f"  {percent}\n"
        "</div>\n"
        f"{overall}\n"
    )


def status(display: SessionDisplay) -> str:
    """The status region (``role="status"``): one sentence, which changes only
    when the session's state does."""
    return f"{_escape(display.status_text)}\n"


def outcome(display: SessionDisplay) -> str:
    """The outcome region: what ``progress_ui.js`` reads of the session, in a
    hidden element. While the session runs, ``data-pui-title`` (what the page's
    title shows, for a component that opts in). Once it has settled, also the
    status sentence (``data-pui-text``, a notification's body) and the settle
    event's ``detail`` (``data-pui-outcome``, JSON), from which ``progress_ui.js``
    dispatches ``progress:complete`` (or ``error``, ``cancelled``); then the
    result links of its completed tasks."""
    title = f' data-pui-title="{_escape(display.title_text)}"'
    if not display.outcome_detail:
        return f"<span hidden{title}></span>"
    links = "".join(
        f'<a class="pui-result__link" href="{_escape(result.url)}"'
        f' data-task="{_escape(result.task_id)}">{_escape(result.label)}</a>'
        for result in display.results
    )
    if links:
        links = f'<p class="pui-result">{links}</p>'
    return (
        f'<span hidden{title} data-pui-text="{_escape(display.status_text)}"'
        f' data-pui-outcome="{_escape(display.outcome_detail)}"></span>{links}'
    )
