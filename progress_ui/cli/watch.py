"""``manage.py progress watch``: follow one session to its end, and say how it ended.

Exit status: 0 complete, 1 a task failed, 2 cancelled, 3 expired or not found
(an unknown id, or a 404: not visible with these credentials), 4 the stream or
the cache failed, the server sent something that is not a snapshot (malformed
or deeply nested JSON, an unknown status), or ``--timeout`` passed first; 64 a
bad option, 130 Ctrl-C (the session goes on). Whatever ends the watch, the
display is closed first, so a live display gives the cursor back.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import IO, cast

from django.core.management.base import OutputWrapper

from progress_ui.cli.arguments import WatchRequest
from progress_ui.cli.cache_source import cache_snapshots
from progress_ui.cli.deadlines import deadline_after
from progress_ui.cli.displays import INSTALL_HINT, Display, PlainDisplay, live_display
from progress_ui.cli.exits import EXIT_INTERRUPTED, WatchFailed
from progress_ui.cli.http_source import url_snapshots
from progress_ui.cli.lines import outcome
from progress_ui.cli.output import CommandStream
from progress_ui.cli.snapshots import TaskTracker, Watched


def snapshots(request: WatchRequest) -> Generator[Watched]:
    """The snapshots to show, from the server or the cache; the deadline starts now."""
    deadline = deadline_after(request.timeout)
    tracker = TaskTracker()
    if request.url is not None:
        return url_snapshots(request.url, request.headers, request.read_timeout, deadline, tracker)
    assert request.session_id is not None  # checked by watch_request
    return cache_snapshots(request.session_id, request.poll_interval, deadline, tracker)


def choose_display(request: WatchRequest, stdout: OutputWrapper, stderr: OutputWrapper) -> Display:
    live = stdout.isatty() if request.live is None else request.live
    if live:
        # rich asks for IO[str]; it uses write, flush, isatty and encoding.
        display = live_display(cast(IO[str], CommandStream(stdout)))
        if display is not None:
            return display
        stderr.write(f"Live bars need rich: {INSTALL_HINT}. Printing plain lines.")
    return PlainDisplay(stdout.write, request.line_interval)


def watch(request: WatchRequest, stdout: OutputWrapper, stderr: OutputWrapper) -> int:
    """Follow the session, drawing it on ``stdout``; the exit status."""
    items = snapshots(request)
    display = choose_display(request, stdout, stderr)
    last: Watched | None = None
    ending: str | None = None
    try:
        for snap in items:
            if snap != last:
                display.show(snap)
                last = snap
    except WatchFailed as exc:
        code, ending = exc.code, str(exc)
    except KeyboardInterrupt:
        code, ending = EXIT_INTERRUPTED, "Interrupted: the session goes on."
    finally:
        # Also on an unexpected error: the connection is closed and the terminal
        # given back before the traceback.
        items.close()
        display.close(last)
    if ending is None:
        code, ending = outcome(last)
    stdout.write(ending)
    return code
