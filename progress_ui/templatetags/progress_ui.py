"""``{% load progress_ui %}``: ``{% progress_scripts %}``, ``{% progress_css %}``,
``{% progress_session session %}`` and ``{% progress_bar %}``.

Each tag is a thin wrapper over a plain function (here or in
``progress_ui.rendering``), so views and tests can call the same code.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from ..rendering import htmx_version, render_bar, render_session
from ..status import ReportedStatus

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
    (django-htmx's ``{% htmx_script %}``): two copies of htmx break both."""
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
) -> SafeString:
    """The whole component for ``session`` (a ``ProgressSession`` or a snapshot);
    ``cancellable`` adds a Cancel button while it runs. Nothing at all when there
    is no session (yet): a page that shows the component after its POST renders
    fine on the first GET."""
    if session is None or session == "":
        return SafeString("")
    request = context.get("request")
    return render_session(
        session,
        request=request if isinstance(request, HttpRequest) else None,
        title=title,
        htmx=htmx,
        refresh_url=refresh_url or None,
        cancellable=cancellable not in (False, None, "", "False", "false", "0"),
    )


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
