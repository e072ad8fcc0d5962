"""``{% load progress_ui %}``: ``{% progress_scripts %}``, ``{% progress_css %}``,
``{% progress_session session %}``, ``{% progress_group sessions %}...{% endprogress_group %}``
and ``{% progress_bar %}``; for templates that lay out or replace the component's
markup, the region tags (``{% progress_summary display %}``,
``{% progress_bar_inner bar task_id %}``, ``{% progress_status display %}``) and
the default markup (``{% progress_default_summary display %}``...).

Each tag is a thin wrapper over a plain function (here or in
``progress_ui.render``), so views and tests can call the same code.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest
from django.template.base import FilterExpression, NodeList, Parser, Token, token_kwargs
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from progress_ui.core.status import ReportedStatus
from progress_ui.render import markup, payload, regions
from progress_ui.render.components import (
    htmx_version,
    render_bar,
    render_group,
    render_session,
    session_group,
)
from progress_ui.render.display import BarDisplay, SessionDisplay

register = template.Library()

#: Vendored files (static/progress_ui/vendor) per htmx major version, in load order.
SCRIPTS: dict[int, tuple[str, ...]] = {
    2: ("progress_ui/vendor/htmx-2.0.11.min.js", "progress_ui/vendor/htmx-ext-sse-2.2.4.js"),
    4: ("progress_ui/vendor/htmx-4.0.1.min.js", "progress_ui/vendor/htmx-hx-sse-4.0.1.js"),
}
STYLESHEET = "progress_ui/progress_ui.css"
#: Polling fallback for when SSE keeps failing (loaded after htmx).
FALLBACK_SCRIPT = "progress_ui/progress_ui.js"


def csp_nonce(context: template.Context | dict[str, Any] | None) -> str:
    """The CSP nonce from ``request.csp_nonce`` (django-csp, Django 6's CSP
    middleware) or a ``csp_nonce`` context variable; "" when there is none."""
    if context is None:
        return ""
    request = context.get("request")
    nonce = getattr(request, "csp_nonce", None) if request is not None else None
    if not nonce:
        nonce = context.get("csp_nonce")
    return str(nonce) if nonce else ""


def script_tags(
    *, version: int | str | None = None, nonce: str = "", htmx: bool = True
) -> SafeString:
    """``<script>`` tags for htmx and its SSE extension (2 or 4, default from
    ``PROGRESS_UI["HTMX_VERSION"]``), then the polling fallback.

    htmx 4's core is not deferred: a deferred htmx 4 starts on a timer as soon as
    it has run, and when its SSE extension (the next file) arrives later, the
    elements are processed without it and never connect. Loaded while the page
    is still parsing, htmx 4 waits for DOMContentLoaded, after every deferred
    script, the extension included.

    ``htmx=False`` leaves htmx itself out, for pages that already load it
    (django-htmx's ``{% htmx_script version=4 %}``): two copies of htmx break
    both. The stream needs htmx 2.0.11+ or htmx 4; with an older htmx 2 (such as
    django-htmx's 2.0.10) ``progress_ui.js`` polls instead."""
    major = htmx_version(version)
    files = (*SCRIPTS[major][0 if htmx else 1 :], FALLBACK_SCRIPT)
    blocking = {SCRIPTS[4][0]} if major == 4 else set()
    nonce_attr = format_html(' nonce="{}"', nonce) if nonce else ""
    return format_html_join(
        "\n",
        '<script src="{}"{}{}></script>',
        (
            (static(path), "" if path in blocking else mark_safe(" defer"), nonce_attr)
            for path in files
        ),
    )


def stylesheet_tag(*, nonce: str = "") -> SafeString:
    if nonce:
        return format_html(
            '<link rel="stylesheet" href="{}" nonce="{}">', static(STYLESHEET), nonce
        )
    return format_html('<link rel="stylesheet" href="{}">', static(STYLESHEET))


@register.simple_tag(takes_context=True)
def progress_scripts(
    context: template.Context, version: int | str | None = None, htmx: Any = True
) -> SafeString:
    """Script tags for htmx + the SSE extension (CSP nonce from context);
    ``htmx=False`` when the page loads htmx itself."""
    include_htmx = htmx not in (False, None, "", "False", "false", "0", 0)
    return script_tags(version=version, nonce=csp_nonce(context), htmx=include_htmx)


@register.simple_tag(takes_context=True)
def progress_css(context: template.Context) -> SafeString:
    """The component stylesheet ``<link>``."""
    return stylesheet_tag(nonce=csp_nonce(context))


@register.simple_tag(takes_context=True)
def progress_session(
    context: template.Context,
    session: Any,
    title: str = "",
    htmx: int | str | None = None,
    refresh_url: str | None = None,
    cancellable: Any = False,
    success_url: str | None = None,
    tab_title: Any = False,
    notify: Any = False,
) -> SafeString:
    """The whole component for ``session`` (a ``ProgressSession`` or a snapshot);
    ``cancellable`` adds a Cancel button while it runs; ``success_url`` is where
    the browser goes once it completes (a URL of this site); ``tab_title`` puts
    the percent, then the outcome, in the page's title; ``notify`` offers a
    browser notification when it ends. Nothing at all when there is no session
    (yet): a page that shows the component after its POST renders fine on the
    first GET."""
    if session is None or session == "":
        return SafeString("")
    request = context.get("request")
    # Inside {% progress_group %}: a session of the group shares its connection.
    session_id = (
        session.get("session_id")
        if isinstance(session, dict)
        else getattr(session, "session_id", None)
    )
    grouped = session_id in (context.get(GROUP_CONTEXT_KEY) or ())
    return render_session(
        session,
        request=request if isinstance(request, HttpRequest) else None,
        title=title,
        htmx=htmx,
        refresh_url=refresh_url or None,
        transport="group" if grouped else "sse",
        cancellable=_true(cancellable),
        success_url=success_url or None,
        tab_title=_true(tab_title),
        notify=_true(notify),
    )


def _true(value: Any) -> bool:
    return value not in (False, None, "", "False", "false", "0")


#: Context variable, inside {% progress_group %}: ids of the group's streamed sessions.
GROUP_CONTEXT_KEY = "progress_ui_group_streamed"
#: Keyword arguments {% progress_group %} accepts.
GROUP_OPTIONS = ("htmx", "cancellable", "tab_title", "notify")


class ProgressGroupNode(template.Node):
    def __init__(
        self, sessions: FilterExpression, options: dict[str, FilterExpression], body: NodeList
    ) -> None:
        self.sessions, self.options, self.body = sessions, options, body

    def render(self, context: template.Context) -> str:
        sessions = self.sessions.resolve(context)
        options = {name: value.resolve(context) for name, value in self.options.items()}
        request = context.get("request")
        group = session_group(sessions or ())
        with context.push({GROUP_CONTEXT_KEY: frozenset(group.streamed)}):
            body = self.body.render(context)
        return render_group(
            group,
            request=request if isinstance(request, HttpRequest) else None,
            htmx=options.get("htmx") or None,
            cancellable=_true(options.get("cancellable", False)),
            tab_title=_true(options.get("tab_title", False)),
            notify=_true(options.get("notify", False)),
            # An empty body: every session's component, in order.
            content=SafeString(body) if body.strip() else None,
        )


@register.tag("progress_group")
def progress_group(parser: Parser, token: Token) -> ProgressGroupNode:
    """``{% progress_group sessions [htmx=4] [cancellable=True] [tab_title=True]
    [notify=True] %}...{% endprogress_group %}``:
    the sessions share one SSE connection (``rendering.render_group``). Each item
    of ``sessions`` is a session, a snapshot or a ``(title, session)`` pair. An
    empty body renders every session's component; otherwise the body lays them
    out, and each ``{% progress_session %}`` of a group session in it renders
    without a connection of its own."""
    bits = token.split_contents()
    usage = (
        "Usage: {% progress_group sessions [htmx=2|4] [cancellable=True] [tab_title=True]"
        " [notify=True] %}"
        "...{% endprogress_group %}"
    )
    if len(bits) < 2:
        raise template.TemplateSyntaxError(f"{bits[0]} needs the sessions to show. {usage}")
    sessions = parser.compile_filter(bits[1])
    rest = bits[2:]
    options = token_kwargs(rest, parser)
    unknown = sorted(set(options) - set(GROUP_OPTIONS))
    if rest or unknown:
        raise template.TemplateSyntaxError(
            f"{bits[0]} got unexpected arguments {(unknown or rest)!r}. {usage}"
        )
    body = parser.parse(("endprogress_group",))
    parser.delete_first_token()
    return ProgressGroupNode(sessions, options, body)


@register.simple_tag
def progress_bar(
    name: str,
    percent: Any = 0,
    status: str = ReportedStatus.RUNNING,
    message: str = "",
    simulated: bool = False,
    current: float | None = None,
    total: float | None = None,
) -> SafeString:
    """A standalone bar, not connected to a stream."""
    return render_bar(
        name=name,
        percent=percent,
        status=status,
        message=message,
        simulated=simulated,
        current=current,
        total=total,
    )


# -- regions: the same content on the page and in the stream ----------------------------
# A frame template (progress_ui/session.html, bar.html) places each region with these:
# the project's region template if it overrides one, else the default markup.


@register.simple_tag
def progress_summary(display: SessionDisplay) -> SafeString:
    """The summary region's content (``progress_ui/summary.html``)."""
    return SafeString(regions.summary(display))


@register.simple_tag
def progress_bar_inner(bar: BarDisplay, task_id: str = "") -> SafeString:
    """A bar's content (``progress_ui/bar_inner.html``); ``task_id`` for a task's bar."""
    return SafeString(regions.bar_inner(bar, task_id))


@register.simple_tag
def progress_status(display: SessionDisplay) -> SafeString:
    """The status region's content (``progress_ui/status.html``)."""
    return SafeString(regions.status(display))


@register.simple_tag
def progress_outcome(display: SessionDisplay) -> SafeString:
    """The outcome region's content: result links and the settle event's detail
    (empty while the session runs; not a template, ``progress_ui.js`` reads it)."""
    return SafeString(markup.outcome(display))


# -- the default markup (what the packaged region templates render) ----------------------
# An overriding region template may call these to wrap the default rather than replace it.


@register.simple_tag
def progress_default_summary(display: SessionDisplay) -> SafeString:
    return SafeString(markup.summary(display))


@register.simple_tag
def progress_default_bar_inner(bar: BarDisplay) -> SafeString:
    return SafeString(markup.bar_inner(bar))


@register.simple_tag
def progress_default_status(display: SessionDisplay) -> SafeString:
    return SafeString(markup.status(display))


@register.simple_tag
def progress_default_partials(display: SessionDisplay) -> SafeString:
    return SafeString(payload.default_partials(display))
