"""The payload of one SSE message: one ``<hx-partial>`` per region.

Every change of every followed session is rendered once per process and sent
to all its viewers, so this bounds how many changes a process can serve. Each
partial holds what :mod:`progress_ui.render.regions` gives the page for that
region; with the packaged region templates that is the default markup, built
in Python (no template engine on this path).

A project that overrides ``progress_ui/partials.html`` gets that template
rendered instead (with ``display``; its regions through the region tags, as
the packaged one does).
"""

from __future__ import annotations

from html import escape as _escape

from django.template.loader import render_to_string

from progress_ui.render import markup, regions
from progress_ui.render.display import SessionDisplay

__all__ = ["default_partials", "partials"]


def _partial(region_id: str, content: str) -> str:
    return f'<hx-partial id="{_escape(region_id)}" hx-swap="innerMorph">{content}</hx-partial>'


def default_partials(display: SessionDisplay) -> str:
    """The default payload: the summary, the bars of ``display.tasks``, the status
    and the outcome (which is not a template: ``progress_ui.js`` reads the page
    title's text and, once the session has settled, the settle event's detail
    from it)."""
    if not regions.overridden():  # the common case, without a lookup per region
        parts = [_partial(display.summary_id, markup.summary(display))]
        parts.extend(_partial(bar.dom_id, markup.bar_inner(bar)) for _, bar in display.tasks)
        parts.append(_partial(display.status_id, markup.status(display)))
    else:
        parts = [_partial(display.summary_id, regions.summary(display))]
        parts.extend(
            _partial(bar.dom_id, regions.bar_inner(bar, task_id)) for task_id, bar in display.tasks
        )
        parts.append(_partial(display.status_id, regions.status(display)))
    parts.append(_partial(display.outcome_id, markup.outcome(display)))
    return "\n".join(parts)


def partials(display: SessionDisplay) -> str:
    """The payload for ``display`` (whose ``tasks`` are the bars to send)."""
    if regions.PARTIALS in regions.overridden():
        return render_to_string(regions.PARTIALS, {"display": display}).strip()
    return default_partials(display)
