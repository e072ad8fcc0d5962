"""``manage.py progress list``: the sessions of the session index, newest first, as a table.

Every field of a row (the id, the status, the owner token, which may be any
``owner=`` string) goes through :func:`~progress_ui.cli.sanitize.safe_text`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from progress_ui.cli.exits import EXIT_TRANSPORT
from progress_ui.cli.sanitize import safe_text
from progress_ui.engine import listing
from progress_ui.engine.store import CacheUnavailable

OWNER_LIMIT = 200


def table_lines(rows: Iterable[listing.SessionSummary]) -> list[str]:
    """The table's lines: a header, a row per session, a count."""
    lines = [f"{'SESSION ID':<32}  {'STATUS':<9}  {'%':>3}  {'TASKS':>5}  {'CREATED':<20}  OWNER"]
    for row in rows:
        session_id = safe_text(row.session_id, 64)
        status = safe_text(row.status, 20)
        owner = safe_text(row.owner, OWNER_LIMIT) or "-"
        lines.append(
            f"{session_id:<32}  {status:<9}  {int(row.overall_percent):>3}  "
            f"{int(row.task_count):>5}  {created_text(row.created_at):<20}  {owner}"
        )
    count = len(lines) - 1
    lines.append(f"{count} session{'s' if count != 1 else ''}.")
    return lines


def created_text(created_at: float) -> str:
    """UTC, to the second ("-" when unknown)."""
    if created_at <= 0:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created_at))


def list_sessions(limit: int, write: Callable[[str], None], warn: Callable[[str], None]) -> int:
    """Write the table (or why there is none); the exit status."""
    if not listing.supports_listing():
        write(
            "Listing sessions needs the session index, which PROGRESS_UI['INDEX_SIZE'] = 0 "
            "turns off. Watch a session by its id: manage.py progress watch <session_id>"
        )
        return 0
    try:
        rows = listing.list_sessions(limit=limit)
    except CacheUnavailable as exc:
        warn(f"Failed: {safe_text(exc, 300)}")
        return EXIT_TRANSPORT
    if not rows:
        write("No sessions.")
        return 0
    for line in table_lines(rows):
        write(line)
    return 0
