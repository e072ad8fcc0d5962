"""Snapshots from the progress cache, as the NDJSON view reads them."""

from __future__ import annotations

from collections.abc import Generator

from progress_ui.cli.deadlines import remaining
from progress_ui.cli.exits import EXIT_GONE, EXIT_TRANSPORT, WatchFailed
from progress_ui.cli.sanitize import safe_text
from progress_ui.cli.snapshots import BadSnapshot, TaskTracker, Watched, read_snapshot
from progress_ui.engine.follow import follow_snapshots
from progress_ui.engine.session import ProgressSession
from progress_ui.engine.store import CacheUnavailable


def cache_snapshots(
    session_id: str, poll_interval: float, deadline: float | None, tracker: TaskTracker
) -> Generator[Watched]:
    """Changed snapshots from the progress cache until the session settles (or
    expires) or ``deadline`` passes. Each goes through ``read_snapshot``, as a
    server's would: names and messages are whatever the application stored."""
    try:
        session = ProgressSession.get(session_id)
        if session is None:
            raise WatchFailed(EXIT_GONE, "Not found: no such session (unknown id, or expired).")
        while True:
            left = remaining(deadline)
            if left is not None and left <= 0:
                return
            last: Watched | None = None
            for item in follow_snapshots(session, poll_interval=poll_interval, max_duration=left):
                if item is not None:  # None: a heartbeat
                    last = read_snapshot(item, tracker)
                    yield last
            if last is None or last.settled:
                return
            # Followed for MAX_STREAM_DURATION: follow on.
    except CacheUnavailable as exc:
        raise WatchFailed(
            EXIT_TRANSPORT, f"Failed: the progress cache failed ({safe_text(exc, 200)})."
        ) from exc
    except BadSnapshot as exc:
        raise WatchFailed(EXIT_TRANSPORT, f"Failed: the cache holds {exc}.") from exc
