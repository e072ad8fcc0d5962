"""HTML for sessions: the whole component, and the per-region ``<hx-partial>``
fragments that SSE messages carry. (Placeholder markup; the front-end work
replaces it with templates.)"""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .snapshot import SessionSnapshot


def region_id(session_id: str, region: str) -> str:
    """Globally unique element id of one region (``summary`` or a task id)."""
    return f"progress-{session_id}-{region}"


def render_partials(snapshot: SessionSnapshot) -> SafeString:
    """One ``<hx-partial>`` per region, to be sent as an SSE message payload."""
    sid = snapshot["session_id"]
    return format_html_join(
        "\n",
        '<hx-partial id="{}" hx-swap="innerMorph">{}</hx-partial>',
        [(region_id(sid, t), format_html("{} {}% {}", task["name"], task["percent"], task["message"]))
         for t, task in snapshot["tasks"].items()],
    )
