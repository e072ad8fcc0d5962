"""The content of a session's live regions, for the page and the stream alike.

The page (``progress_ui/session.html``, through the ``{% progress_summary %}``,
``{% progress_bar_inner %}`` and ``{% progress_status %}`` tags) and every SSE
message (:mod:`progress_ui.render.payload`) take a region's content from the
functions below, with the same context, so an update swaps in exactly what a
fresh page load shows.

Each region is the default markup (:mod:`progress_ui.render.markup`), unless the
project overrides its template (``progress_ui/summary.html``,
``progress_ui/bar_inner.html``, ``progress_ui/status.html``): then that template
is rendered, on the page and in the stream, with the context listed in
:data:`CONTEXT`. A template counts as overridden when the template engines
resolve its name to another file than the one this package ships (looked up
once per process, and again whenever ``TEMPLATES`` or ``INSTALLED_APPS``
change).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string

from progress_ui.render import markup
from progress_ui.render.display import BarDisplay, SessionDisplay

SUMMARY = "progress_ui/summary.html"
BAR_INNER = "progress_ui/bar_inner.html"
STATUS = "progress_ui/status.html"
#: The SSE payload around the regions (:mod:`progress_ui.render.payload`).
PARTIALS = "progress_ui/partials.html"

#: What an overriding template gets, by template (the same on the page and in the
#: stream: no request, no context processors).
CONTEXT = {
    SUMMARY: ("display",),
    BAR_INNER: ("bar", "task_id"),
    STATUS: ("display",),
    PARTIALS: ("display",),
}

#: Where the packaged templates are (``progress_ui/templates``).
PACKAGED_DIR = Path(__file__).resolve().parent.parent / "templates"

_overridden: frozenset[str] | None = None


def is_packaged(name: str) -> bool:
    """Whether the template engines resolve ``name`` to this package's own file
    (or to nothing at all: then the default markup is all there is)."""
    try:
        found_template = get_template(name)
    except TemplateDoesNotExist:
        return True
    # Template.origin (Django's and Jinja2's backends); a backend without it counts
    # as the project's own.
    found = getattr(getattr(found_template, "origin", None), "name", None)
    if not isinstance(found, str) or not os.path.isabs(found):
        return False  # e.g. a template from a locmem loader: the project's own
    return os.path.realpath(found) == os.path.realpath(PACKAGED_DIR / name)


def overridden() -> frozenset[str]:
    """The region templates (and ``partials.html``) the project overrides."""
    global _overridden
    found = _overridden
    if found is None:
        found = _overridden = frozenset(name for name in CONTEXT if not is_packaged(name))
    return found


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: object) -> None:
    # A template found in another directory or app, or not any more.
    global _overridden
    if setting in ("TEMPLATES", "INSTALLED_APPS"):
        _overridden = None


def _region(name: str, default: Callable[[], str], context: Callable[[], dict[str, Any]]) -> str:
    if name in overridden():
        return render_to_string(name, context())
    return default()


def summary(display: SessionDisplay) -> str:
    """The summary region's content."""
    return _region(SUMMARY, lambda: markup.summary(display), lambda: {"display": display})


def bar_inner(bar: BarDisplay, task_id: str = "") -> str:
    """A bar's content: a task's region (``task_id`` given), or a standalone bar."""
    return _region(
        BAR_INNER, lambda: markup.bar_inner(bar), lambda: {"bar": bar, "task_id": task_id}
    )


def status(display: SessionDisplay) -> str:
    """The status region's content."""
    return _region(STATUS, lambda: markup.status(display), lambda: {"display": display})
