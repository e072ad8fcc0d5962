"""The stream pipelines as a WSGI view runs them: on the process's hub loop,
through ``wsgi_loop.iterate_in_loop`` (the one sync adapter)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from progress_ui.engine.session import ProgressSession
from progress_ui.streaming.group_stream import group_stream
from progress_ui.streaming.sse_stream import sse_stream
from progress_ui.streaming.wsgi_loop import iterate_in_loop


def sync_sse(session: ProgressSession, **options: Any) -> Iterator[str]:
    """``sse_stream(session, **options)`` for a sync caller."""
    return iterate_in_loop(lambda: sse_stream(session, **options))


def sync_group(sessions: Sequence[ProgressSession], **options: Any) -> Iterator[str]:
    """``group_stream(sessions, **options)`` for a sync caller."""
    return iterate_in_loop(lambda: group_stream(sessions, **options))
