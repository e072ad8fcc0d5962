"""HTML for sessions: the whole component, standalone bars, groups of sessions
over one connection, and the ``<hx-partial>`` payload of SSE messages.

A session renders as regions with globally unique ids: a summary (overall
bar), a live status line (``role="status"``), and one region per task. The
frames around them are templates (``progress_ui/session.html``, ``group.html``,
``bar.html``); the regions' content comes from :mod:`progress_ui.render.regions`
on the page and in the stream alike, so an update swaps in exactly what a fresh
page load would show.

Everything user-supplied (task names, messages, titles) is escaped: by the
default markup itself, and by the frames, which turn autoescaping on whatever
the template engine's options.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from progress_ui.conf import current as current_settings
from progress_ui.core.snapshot import SessionSnapshot, is_settled
from progress_ui.core.status import ReportedStatus
from progress_ui.engine.session import ProgressSession
from progress_ui.render import payload
from progress_ui.render.display import make_bar, session_display
from progress_ui.render.outcome import same_site_url
from progress_ui.wire.sse import DONE_EVENT

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = [
    "SessionGroup",
    "from_htmx",
    "group_url",
    "htmx_version",
    "render_bar",
    "render_group",
    "render_partials",
    "render_session",
    "session_group",
]

#: ``hx-config`` of an htmx 4 stream that goes on in a background tab (the page's
#: title and a notification follow it there); htmx 2 never pauses one.
BACKGROUND_SSE = '{"sse": {"pauseOnBackground": false}}'

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


def _as_snapshot(session: ProgressSession | SessionSnapshot) -> SessionSnapshot:
    """A ``ProgressSession`` (read now) or an already-read snapshot, as a snapshot."""
    if isinstance(session, dict):
        return session
    if isinstance(session, ProgressSession):
        return session.to_dict()
    raise TypeError(f"Expected a ProgressSession or a snapshot dict, got {type(session).__name__}.")


# -- rendering ---------------------------------------------------------------------


def _render(template: str, context: dict[str, Any], request: HttpRequest | None = None) -> str:
    return render_to_string(template, context, request=request)


def from_htmx(request: HttpRequest | None) -> bool:
    """Whether htmx sent ``request``: django-htmx's ``request.htmx`` where its
    middleware runs, else the ``HX-Request`` header it reads."""
    if request is None:
        return False
    details = getattr(request, "htmx", None)
    if details is not None:
        return bool(details)
    return request.headers.get("HX-Request") == "true"


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
    return SafeString(payload.partials(display))


def render_session(
    session: ProgressSession | SessionSnapshot,
    *,
    request: HttpRequest | None = None,
    title: str = "",
    htmx: int | str | None = None,
    refresh_url: str | None = None,
    transport: str = "sse",
    cancellable: bool = False,
    success_url: str | None = None,
    tab_title: bool = False,
    notify: bool = False,
) -> SafeString:
    """The whole component: regions inside an element that connects to the SSE
    stream (no connection once the session has finished), plus a ``<noscript>``
    refresh for browsers without JavaScript.

    While the session runs, the component also names its polling URL
    (``data-progress-poll``): ``progress_ui.js`` switches to it when the SSE
    connection keeps failing. ``transport="poll"`` renders that polled form,
    without an SSE connection; ``transport="group"`` renders it without a
    connection too, for a component inside a group that shares one
    (:func:`render_group`).

    ``refresh_url`` is where a no-JS browser reloads the state; by default the
    current page for a GET request, else the HTML fragment endpoint.

    ``cancellable=True`` adds a Cancel button (a CSRF-protected POST to
    ``progress_ui:cancel``; pass ``request`` so the form carries the token)
    while the session runs.

    ``success_url``: where ``progress_ui.js`` sends the browser once the session
    completes (after the ``progress:complete`` event, unless a listener calls
    ``preventDefault()``); a finished component also links to it. Only URLs of
    this site are kept (``url_has_allowed_host_and_scheme``).

    ``tab_title=True``: the page's title shows the percent while the session
    runs ("42% · Imports"), then its outcome ("Complete · Imports").
    ``notify=True``: while it runs, a "Notify me when done" button; once clicked
    (the browser asks for permission then, never before), a browser notification
    says how it ended. Both keep an htmx 4 stream open while the tab is in the
    background (htmx 4 otherwise pauses it there).
    """
    snapshot = _as_snapshot(session)
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
        "success_url": same_site_url(success_url, request),
        "tab_title": tab_title,
        "notify": notify,
        "sse_config": BACKGROUND_SSE if tab_title or notify else "",
    }
    if not display.finished:
        if transport not in ("poll", "group"):
            context["sse_url"] = progress_url("sse", display.session_id)
        context["poll_url"] = progress_url("fragment", display.session_id) + "?transport=poll"
        if cancellable:
            context["cancel_url"] = progress_url("cancel", display.session_id)
            if request is not None and request.method in ("GET", "HEAD"):
                context["next_url"] = request.get_full_path()
        # htmx parses responses with scripting off: a <noscript> meta refresh in a
        # swapped-in fragment would come alive and reload the page. So only
        # full-page renders get the no-JS refresh.
        if not from_htmx(request):
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


# -- several sessions over one connection -------------------------------------------

#: One entry of a group: a session (or its snapshot), or a ``(title, session)`` pair.
GroupItem = ProgressSession | SessionSnapshot | tuple[str, ProgressSession | SessionSnapshot]


def group_url(session_ids: Iterable[str]) -> str:
    """The URL of one SSE stream for all of ``session_ids`` (``progress_ui:group_sse``)."""
    try:
        base = reverse("progress_ui:group_sse")
    except NoReverseMatch as exc:
        raise ImproperlyConfigured(
            "Cannot reverse 'progress_ui:group_sse': add "
            "path('progress/', include('progress_ui.urls')) to your URLconf."
        ) from exc
    return base + "?" + urlencode([("session", session_id) for session_id in session_ids])


@dataclass(frozen=True)
class SessionGroup:
    """Sessions shown together on a page, each read once. ``streamed`` holds the
    ids of the running ones that share the group's connection: at most
    ``MAX_GROUP_SESSIONS`` (a running session beyond them keeps a connection of
    its own, rather than breaking the page)."""

    items: tuple[tuple[str, SessionSnapshot], ...]
    streamed: tuple[str, ...]

    @property
    def url(self) -> str:
        """The group's stream; "" when no session runs (nothing to connect to)."""
        return group_url(self.streamed) if self.streamed else ""


def session_group(sessions: Iterable[GroupItem]) -> SessionGroup:
    """Read ``sessions`` (each a session, a snapshot or a ``(title, session)`` pair)
    into a :class:`SessionGroup`."""
    items: list[tuple[str, SessionSnapshot]] = []
    for item in sessions:
        title, session = item if isinstance(item, tuple) else ("", item)
        items.append((str(title), _as_snapshot(session)))
    running = (snapshot["session_id"] for _, snapshot in items if not is_settled(snapshot))
    streamed = tuple(dict.fromkeys(running))[: current_settings().MAX_GROUP_SESSIONS]
    return SessionGroup(tuple(items), streamed)


def render_group(
    sessions: SessionGroup | Iterable[GroupItem],
    *,
    request: HttpRequest | None = None,
    htmx: int | str | None = None,
    cancellable: bool = False,
    content: SafeString | None = None,
    tab_title: bool = False,
    notify: bool = False,
) -> SafeString:
    """Several sessions over one SSE connection: one element (``.pui-group``) that
    connects once for all the running sessions (htmx 2 or 4 markup, as
    :func:`render_session`; ``hx-swap="none"``, since every message is made of
    ``<hx-partial>`` regions with globally unique ids) and holds each session's
    component rendered with ``transport="group"`` (no connection of its own).

    ``content`` replaces those components with markup of the caller's (the
    ``{% progress_group %}`` block tag passes what its body rendered); the
    components of ``group.streamed`` in it must be rendered with
    ``transport="group"``. When the connection fails, ``progress_ui.js`` turns
    the components in the element to polling, one by one. No sessions and no
    ``content`` render nothing. ``tab_title`` and ``notify`` as for
    :func:`render_session`, for every component (with ``content``, give them to
    its components too)."""
    group = sessions if isinstance(sessions, SessionGroup) else session_group(sessions)
    if content is None and not group.items:
        return SafeString("")  # nothing to show (yet)
    if content is None:
        content = SafeString(
            "\n".join(
                render_session(
                    snapshot,
                    request=request,
                    title=title,
                    htmx=htmx,
                    cancellable=cancellable,
                    tab_title=tab_title,
                    notify=notify,
                    transport="group" if snapshot["session_id"] in group.streamed else "sse",
                )
                for title, snapshot in group.items
            )
        )
    context = {
        "sse_url": group.url,
        "htmx_version": htmx_version(htmx),
        "done_event": DONE_EVENT,
        "content": content,
        "sse_config": BACKGROUND_SSE if tab_title or notify else "",
    }
    return SafeString(_render("progress_ui/group.html", context, request).strip())
