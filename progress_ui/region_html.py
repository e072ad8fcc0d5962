"""The ``<hx-partial>`` payload of SSE messages, built in Python.

Every change of every followed session is rendered once per process and sent
to all its viewers, so this rendering bounds how many changes a process can
serve: through Django's template engine a message takes about a millisecond;
built here, a few dozen microseconds. The output is byte for byte what
``progress_ui/partials.html`` renders (``tests/test_region_html.py`` compares
them over generated sessions), so the templates stay the reference.

It is only used while those templates are the ones this module was written for
(:func:`templates_unchanged`: the sources' hashes match). A project that
overrides ``partials.html``, ``bar_inner.html``, ``summary.html`` or
``status.html`` gets its own templates rendered, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.html import conditional_escape
from django.utils.translation import gettext, ngettext

from .display import BarDisplay, SessionDisplay

#: SHA-256 of the templates this module reproduces. Change a template, and the
#: test that checks these tells you to update the code below with it.
TEMPLATE_HASHES = {
    "progress_ui/partials.html": "16950c47ff38a4a19c49a5f7b97463e669711e63a69ad4c1685a521d2656f170",
    "progress_ui/bar_inner.html": (
        "6ede5cdd1daebe9c4983ed6a89df6efe8c3ddb1cd1134787cf8233cd0aafed31"
    ),
    "progress_ui/summary.html": "4086f2c3572c1bef713abdbdecbca94f8ab858c6baefe5a44f9467965f9dddde",
    "progress_ui/status.html": "b2e1c029c16850db4b7033841b180163c24ef18e848eb9e614c28dc2222783fd",
}

_unchanged: bool | None = None


def template_hash(name: str) -> str | None:
    """The hash of the source of the template ``name`` resolves to, if any."""
    try:
        template = get_template(name)
    except TemplateDoesNotExist:
        return None
    source = getattr(getattr(template, "template", None), "source", None)
    if not isinstance(source, str):
        return None
    return hashlib.sha256(source.encode()).hexdigest()


def templates_unchanged() -> bool:
    """True when every region template is the packaged one (checked once per
    process; ``reset()`` forgets, e.g. after the template settings change)."""
    global _unchanged
    if _unchanged is None:
        _unchanged = all(template_hash(n) == h for n, h in TEMPLATE_HASHES.items())
    return _unchanged


@receiver(setting_changed)
def reset(*, setting: str = "TEMPLATES", **kwargs: object) -> None:
    """Forget whether the templates are the packaged ones (when TEMPLATES change)."""
    global _unchanged
    if setting == "TEMPLATES":
        _unchanged = None


def _e(value: str) -> str:
    return str(conditional_escape(value))


def bar_inner(bar: BarDisplay) -> str:
    """``progress_ui/bar_inner.html`` for a bar of a session (with ids)."""
    dom = _e(bar.dom_id)
    status = _e(bar.status)
    pct = bar.percent
    simulated = " pui-bar--simulated" if bar.simulated else ""
    count = f'<span class="pui-bar__count">{_e(bar.count_text)}</span>' if bar.count_text else ""
    step = f'<span class="pui-bar__step">{_e(bar.step_text)}</span>' if bar.step_text else ""
    share = f'<span class="pui-bar__share">{_e(bar.share_text)}</span>' if bar.share_text else ""
    timing = (
        f'<span class="pui-bar__timing">{_e(bar.timing_text)}</span>' if bar.timing_text else ""
    )
    message = ""
    if bar.message:
        error = " pui-bar__message--error" if bar.is_error else ""
        message = f'<span class="pui-bar__message{error}">{_e(bar.message)}</span>'
    return (
        "\n"
        '<div class="pui-bar__head">\n'
        f'  <span class="pui-bar__name" id="{dom}:name">{_e(bar.name)}</span>\n'
        f'  <span class="pui-bar__percent" aria-hidden="true">{pct}%</span>\n'
        "</div>\n"
        f'<div class="pui-bar__track pui-bar--{status}{simulated}" id="{dom}:track"'
        f' aria-labelledby="{dom}:name" role="progressbar" aria-valuemin="0"'
        f' aria-valuemax="100" aria-valuenow="{pct}" aria-valuetext="{_e(bar.value_text)}">\n'
        f'  <div class="pui-bar__fill pui-w-{pct}" id="{dom}:fill"></div>\n'
        "</div>\n"
        '<div class="pui-bar__foot">\n'
        f'  <span class="pui-bar__state pui-state--{status}">{_e(bar.status_label)}</span>\n'
        f"  {count}\n"
        f"  {step}\n"
        f"  {share}\n"
        f"  {timing}\n"
        f"  {message}\n"
        "</div>\n"
    )


def summary(display: SessionDisplay) -> str:
    """``progress_ui/summary.html``."""
    status = _e(display.status)
    done, count = display.done_count, display.task_count
    counted = ngettext(
        "%(done)s of %(count)s task done", "%(done)s of %(count)s tasks done", count
    ) % {"done": done, "count": count}
    percent = overall = ""
    if display.show_overall:
        pct = display.overall_percent
        sid = _e(display.summary_id)
        percent = f'<span class="pui-summary__percent" aria-hidden="true">{pct}%</span>'
        overall = (
            f'<div class="pui-overall pui-bar--{status}" id="{sid}:track" role="progressbar"'
            f' aria-label="{_e(gettext("Overall progress"))}" aria-valuemin="0"'
            f' aria-valuemax="100" aria-valuenow="{pct}"'
            f' aria-valuetext="{_e(display.overall_value_text)}">'
            f'<div class="pui-bar__fill pui-w-{pct}" id="{sid}:fill"></div></div>'
        )
    return (
        "\n"
        '<div class="pui-summary__head">\n'
        f'  <span class="pui-badge pui-state--{status}">{_e(display.status_label)}</span>\n'
        f'  <span class="pui-summary__count">{counted}</span>\n'
        f"  {percent}\n"
        "</div>\n"
        f"{overall}\n"
    )


def status(display: SessionDisplay) -> str:
    """``progress_ui/status.html``."""
    return f"{_e(display.status_text)}\n"


def partials(display: SessionDisplay, tasks: Iterable[tuple[str, BarDisplay]]) -> str:
    """``progress_ui/partials.html``, stripped as ``render_partials`` strips it."""
    parts = [
        f'<hx-partial id="{_e(display.summary_id)}" hx-swap="innerMorph">'
        f"{summary(display)}</hx-partial>\n"
    ]
    parts.extend(
        f'<hx-partial id="{_e(bar.dom_id)}" hx-swap="innerMorph">{bar_inner(bar)}</hx-partial>\n'
        for _, bar in tasks
    )
    parts.append(
        f'<hx-partial id="{_e(display.status_id)}" hx-swap="innerMorph">'
        f"{status(display)}</hx-partial>"
    )
    return "".join(parts)
