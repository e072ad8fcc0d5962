"""``manage.py progress watch|list``: follow a session from a terminal, list sessions.

``watch <session_id>`` follows the session in the progress cache (as the NDJSON
view does) and draws one bar per task and the overall bar with ``rich``
(``pip install "django-progress-ui[watch]"``); ``--no-live``, or an output that
is not a terminal, prints plain lines instead (no ``rich`` needed).
``watch --url https://site/progress/<id>/stream/`` reads the site's NDJSON
endpoint instead, with ``--cookie NAME=VALUE`` / ``--header "Name: value"`` as
credentials (standard library HTTP only).

Exit status: 0 complete, 1 a task failed, 2 cancelled, 3 expired or not found
(an unknown id, or a 404: not visible with these credentials), 4 the stream or
the cache failed (or ``--timeout`` passed first), 64 a bad option, 130 Ctrl-C
(the session goes on).

``list`` shows the sessions in a Redis progress cache (``progress_ui.listing``).
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import sys
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TextIO, cast
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from progress_ui import listing
from progress_ui.conf import settings as progress_settings
from progress_ui.follow import follow_snapshots
from progress_ui.session import ProgressSession
from progress_ui.snapshot import SessionSnapshot, TaskSnapshot, is_settled
from progress_ui.store import CacheUnavailable
from progress_ui.validation import is_valid_session_id

EXIT_COMPLETE = 0
EXIT_ERROR = 1
EXIT_CANCELLED = 2
EXIT_GONE = 3
EXIT_TRANSPORT = 4
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130

INSTALL_HINT = 'pip install "django-progress-ui[watch]"'
#: Longest NDJSON line accepted (a snapshot of 100 tasks at every limit is ~0.2 MB).
MAX_LINE = 4 * 1024 * 1024
#: Seconds between reconnections when a server ends a stream before the session settles.
RECONNECT_DELAY = 1.0
#: Exit status for each final session status.
EXIT_FOR_STATUS = {"complete": EXIT_COMPLETE, "error": EXIT_ERROR, "cancelled": EXIT_CANCELLED}


class WatchFailed(Exception):
    """The watch cannot go on; ``code`` is the exit status, the message is shown."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- text -------------------------------------------------------------------------


def safe_text(value: object, limit: int = 500) -> str:
    """``value`` as one line of terminal-safe text: control and format characters
    (escape sequences, bidi overrides) dropped, whitespace runs made one space.
    Text from a remote server reaches the terminal only through this."""
    text = "" if value is None else str(value)
    cleaned = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    )
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "\u2026"


def number(value: float | None) -> str:
    if value is None:
        return "?"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def counts(task: TaskSnapshot) -> str:
    """ "40/250" and "step 2/3 prices.csv", as far as the task reports them."""
    parts = []
    if task["current"] is not None:
        parts.append(
            number(task["current"])
            if task["total"] is None
            else f"{number(task['current'])}/{number(task['total'])}"
        )
    if task["step"] is not None:
        step = f"step {task['step']}" + (f"/{task['steps']}" if task["steps"] else "")
        parts.append(f"{step} {safe_text(task['step_name'], 80)}".rstrip())
    return " ".join(parts)


def task_line(task: TaskSnapshot) -> str:
    line = f"{safe_text(task['name'], 200)}: {task['status']} {task['percent']}%"
    if extra := counts(task):
        line += f" ({extra})"
    if message := safe_text(task["message"]):
        line += f" - {message}"
    return line


def tally(snap: SessionSnapshot) -> str:
    """ "1/3 complete, 1 running, 1 pending": how many tasks are in each status."""
    statuses = [t["status"] for t in snap["tasks"].values()]
    done = statuses.count("complete")
    parts = [f"{done}/{len(statuses)} complete"]
    for status in ("running", "pending", "error", "cancelled"):
        if n := statuses.count(status):
            parts.append(f"{n} {'failed' if status == 'error' else status}")
    return ", ".join(parts)


def overall_line(snap: SessionSnapshot) -> str:
    return f"Overall: {snap['status']} {snap['overall_percent']}% ({tally(snap)})"


def outcome(last: SessionSnapshot | None) -> tuple[int, str]:
    """The exit status and the one-line summary for the last snapshot seen."""
    if last is None:
        return EXIT_TRANSPORT, "Failed: no snapshot was received."
    if last["expired"]:
        return EXIT_GONE, "Expired: the session is gone from the cache."
    if not is_settled(last):
        return EXIT_TRANSPORT, (
            f"Stopped before the session finished: {last['status']} "
            f"{last['overall_percent']}% ({tally(last)})."
        )
    code = EXIT_FOR_STATUS.get(last["status"], EXIT_TRANSPORT)
    word = {"complete": "Complete", "error": "Failed", "cancelled": "Cancelled"}.get(
        last["status"], safe_text(last["status"], 20)
    )
    summary = f"{word}: {last['overall_percent']}% ({tally(last)})"
    failed = [t for t in last["tasks"].values() if t["status"] == "error"]
    if failed:
        first = failed[0]
        summary += f"; {safe_text(first['name'], 200)}: {safe_text(first['message']) or 'failed'}"
    return code, summary + "."


# -- displays ---------------------------------------------------------------------


def _task_state(task: TaskSnapshot) -> tuple[object, ...]:
    return (
        task["status"],
        task["percent"],
        task["message"],
        task["current"],
        task["total"],
        task["step"],
        task["steps"],
        task["step_name"],
    )


class PlainDisplay:
    """A line per task when it changes: at once when its status changes, else at
    most once per ``interval`` seconds (simulated percents change at every poll),
    and an overall line after them when the overall changed. ``close`` prints
    whatever changed since, so the last lines are the final state."""

    def __init__(self, write: Callable[[str], None], interval: float) -> None:
        self.write = write
        self.interval = interval
        self.printed: dict[str, tuple[object, ...]] = {}
        self.printed_at: dict[str, float] = {}
        self.overall: tuple[str, int] | None = None

    def show(self, snap: SessionSnapshot, *, final: bool = False) -> None:
        now = time.monotonic()
        wrote = False
        for task_id, task in snap["tasks"].items():
            state = _task_state(task)
            before = self.printed.get(task_id)
            if before == state:
                continue
            due = now - self.printed_at.get(task_id, -math.inf) >= self.interval
            if before is None or before[0] != state[0] or due or final:
                self.write(task_line(task))
                self.printed[task_id], self.printed_at[task_id] = state, now
                wrote = True
        overall = (snap["status"], snap["overall_percent"])
        if (wrote or final) and overall != self.overall:
            self.write(overall_line(snap))
            self.overall = overall

    def close(self, last: SessionSnapshot | None) -> None:
        if last is not None and not last["expired"]:
            self.show(last, final=True)


STATUS_STYLES = {
    "pending": "dim",
    "running": "cyan",
    "complete": "green",
    "error": "bold red",
    "cancelled": "yellow",
}


class LiveDisplay:
    """Bars redrawn in place with ``rich`` (imported only here)."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out)
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self.started = False

    def _render(self, snap: SessionSnapshot) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        width = self.console.width
        bar_width = max(10, min(40, width // 4))
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, max_width=max(12, width // 4), overflow="ellipsis")
        table.add_column(width=bar_width)  # the bar
        table.add_column(justify="right", min_width=4, no_wrap=True)  # percent
        table.add_column(min_width=9, no_wrap=True)  # status
        table.add_column(no_wrap=True, overflow="ellipsis")  # counts
        table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)  # message

        def bar(percent: int, status: str) -> ProgressBar:
            style = STATUS_STYLES.get(status, "")
            return ProgressBar(
                total=100,
                completed=percent,
                width=bar_width,
                complete_style=style if status in ("error", "cancelled") else "bar.complete",
                finished_style="green",
            )

        for task in snap["tasks"].values():
            status = task["status"]
            table.add_row(
                Text(safe_text(task["name"], 200)),
                bar(task["percent"], status),
                f"{task['percent']}%",
                Text(status, style=STATUS_STYLES.get(status, "")),
                Text(counts(task)),
                Text(safe_text(task["message"])),
            )
        status = snap["status"]
        table.add_row(
            Text("Overall", style="bold"),
            bar(snap["overall_percent"], status),
            f"{snap['overall_percent']}%",
            Text(status, style=STATUS_STYLES.get(status, "")),
            Text(tally(snap)),
            Text("expired" if snap["expired"] else ""),
        )
        return table

    def show(self, snap: SessionSnapshot) -> None:
        if not self.started:
            self.live.start()
            self.started = True
        self.live.update(self._render(snap), refresh=True)

    def close(self, last: SessionSnapshot | None) -> None:
        if self.started:
            if last is not None:
                self.live.update(self._render(last), refresh=True)
            self.live.stop()
            if not self.console.is_terminal:
                self.console.line()  # rich leaves the last frame without one


def live_display(out: TextIO) -> LiveDisplay | None:
    """A :class:`LiveDisplay`, or None when ``rich`` is not installed."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return None
    return LiveDisplay(out)


# -- sources ----------------------------------------------------------------------


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def cache_snapshots(
    session_id: str, poll_interval: float, deadline: float | None
) -> Iterator[SessionSnapshot]:
    """Changed snapshots from the progress cache until the session settles (or
    expires) or ``deadline`` (``time.monotonic()``) passes."""
    try:
        session = ProgressSession.get(session_id)
        if session is None:
            raise WatchFailed(EXIT_GONE, "Not found: no such session (unknown id, or expired).")
        while True:
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                return
            last: SessionSnapshot | None = None
            for item in follow_snapshots(
                session, poll_interval=poll_interval, max_duration=remaining
            ):
                if item is not None:  # None: a heartbeat
                    last = item
                    yield item
            if last is None or is_settled(last):
                return
            # Followed for MAX_STREAM_DURATION: follow on.
    except CacheUnavailable as exc:
        raise WatchFailed(EXIT_TRANSPORT, f"Failed: the progress cache failed ({exc}).") from exc


def parse_snapshot(value: object) -> SessionSnapshot:
    """A snapshot from a line of JSON, checked field by field (the server may be
    another version of the package, or not this package at all)."""
    if not isinstance(value, dict) or not isinstance(value.get("tasks"), dict):
        raise ValueError("not a progress snapshot")

    def num(v: object) -> float | None:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        return cast(float, v) if ok else None

    def integer(v: object, default: int | None) -> int | None:
        return v if isinstance(v, int) and not isinstance(v, bool) else default

    def percent(v: object) -> int:
        n = num(v)
        return 0 if n is None else int(max(0.0, min(100.0, n)))

    tasks: dict[str, TaskSnapshot] = {}
    for task_id, raw in value["tasks"].items():
        if not isinstance(raw, dict):
            raise ValueError("not a progress snapshot")
        # The fields shown here, checked; whatever else the server sends, as sent.
        task: dict[str, Any] = {str(k): v for k, v in raw.items()}
        task.update(
            name=str(raw.get("name", task_id)),
            status=str(raw.get("status", "")),
            percent=percent(raw.get("percent")),
            message=str(raw.get("message") or ""),
            current=num(raw.get("current")),
            total=num(raw.get("total")),
            step=integer(raw.get("step"), None),
            steps=integer(raw.get("steps"), None),
            step_name=str(raw.get("step_name") or ""),
        )
        tasks[str(task_id)] = cast(TaskSnapshot, task)
    return SessionSnapshot(
        session_id=str(value.get("session_id", "")),
        status=str(value.get("status", "")),
        overall_percent=percent(value.get("overall_percent")),
        tasks=tasks,
        expired=bool(value.get("expired", False)),
    )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the credentials (Cookie, Authorization) to wherever
    # it points: answer it as an error instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _open(url: str, headers: dict[str, str], timeout: float) -> http.client.HTTPResponse:
    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked by the caller)
        url, headers={"Accept": "application/x-ndjson", **headers}
    )
    try:
        return cast(http.client.HTTPResponse, opener.open(request, timeout=timeout))
    except urllib.error.HTTPError as exc:
        location = exc.headers.get("Location") if exc.headers else None
        exc.close()
        if exc.code in (401, 403, 404, 410):
            raise WatchFailed(
                EXIT_GONE,
                f"Not found: HTTP {exc.code} (unknown or expired session, or not visible "
                "with these credentials).",
            ) from None
        if 300 <= exc.code < 400:
            raise WatchFailed(
                EXIT_TRANSPORT,
                f"Failed: HTTP {exc.code}, redirected to {safe_text(location, 200)!r} "
                "(use that URL, or pass the credentials it asks for).",
            ) from None
        raise WatchFailed(EXIT_TRANSPORT, f"Failed: HTTP {exc.code} from the server.") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise WatchFailed(
            EXIT_TRANSPORT, f"Failed: could not connect ({safe_text(reason, 200)})."
        ) from None


def stream_lines(response: http.client.HTTPResponse, deadline: float | None) -> Iterator[bytes]:
    """The response's lines as they arrive; returns quietly when ``deadline``
    passes during a read."""
    while True:
        try:
            line = response.readline(MAX_LINE)
        except (TimeoutError, socket.timeout) as exc:  # noqa: UP041 (3.11's alias)
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                return
            raise WatchFailed(
                EXIT_TRANSPORT, "Failed: the server sent nothing for too long."
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise WatchFailed(
                EXIT_TRANSPORT, f"Failed: the stream broke ({type(exc).__name__})."
            ) from exc
        if not line:
            return
        if not line.endswith(b"\n"):
            why = "a line too long" if len(line) >= MAX_LINE else "a cut line"
            raise WatchFailed(EXIT_TRANSPORT, f"Failed: the stream ended with {why}.")
        yield line


def url_snapshots(
    url: str, headers: dict[str, str], read_timeout: float, deadline: float | None
) -> Iterator[SessionSnapshot]:
    """Snapshots from an NDJSON endpoint until the session settles; reconnects
    when the server ends a stream early (its ``MAX_STREAM_DURATION``)."""
    while True:
        remaining = _remaining(deadline)
        if remaining is not None and remaining <= 0:
            return
        timeout = read_timeout if remaining is None else max(0.05, min(read_timeout, remaining))
        received = False
        with _open(url, headers, timeout) as response:
            content_type = response.headers.get_content_type()
            if content_type != "application/x-ndjson":
                raise WatchFailed(
                    EXIT_TRANSPORT,
                    f"Failed: expected application/x-ndjson, got {safe_text(content_type, 80)} "
                    "(is this the progress_ui:ndjson URL, .../<id>/stream/?).",
                )
            for raw in stream_lines(response, deadline):
                if not raw.strip():
                    continue
                try:
                    value = json.loads(raw)
                except ValueError as exc:
                    raise WatchFailed(EXIT_TRANSPORT, "Failed: the stream sent bad JSON.") from exc
                if isinstance(value, dict) and "error" in value:
                    raise WatchFailed(
                        EXIT_TRANSPORT,
                        f"Failed: the server reported: {safe_text(value['error'], 200)}",
                    )
                try:
                    snap = parse_snapshot(value)
                except ValueError as exc:
                    raise WatchFailed(
                        EXIT_TRANSPORT, "Failed: the stream sent something that is not a snapshot."
                    ) from exc
                received = True
                yield snap
                if is_settled(snap):
                    return
        if not received:
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                return
            raise WatchFailed(EXIT_TRANSPORT, "Failed: the server ended the stream at once.")
        time.sleep(RECONNECT_DELAY)


def credentials(cookies: list[str], headers: list[str]) -> dict[str, str]:
    """Request headers from ``--cookie NAME=VALUE`` and ``--header "Name: value"``."""
    out: dict[str, str] = {}
    for header in headers:
        name, sep, value = header.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or any(c in header for c in "\r\n\0"):
            raise CommandError(
                f"--header takes 'Name: value', got {header!r}", returncode=EXIT_USAGE
            )
        out[name] = value
    pairs = []
    for cookie in cookies:
        name, sep, value = cookie.partition("=")
        if not sep or not name.strip() or any(c in cookie for c in ";\r\n\0"):
            raise CommandError(
                f"--cookie takes NAME=VALUE, got {name!r}=...", returncode=EXIT_USAGE
            )
        pairs.append(f"{name.strip()}={value.strip()}")
    if pairs:
        out["Cookie"] = "; ".join([out["Cookie"], *pairs] if "Cookie" in out else pairs)
    return out


#: Django's options for every command, and those of them that take a value.
_COMMON_FLAGS = frozenset({"--traceback", "--no-color", "--force-color"})
_COMMON_OPTIONS = frozenset({"--settings", "--pythonpath", "--verbosity", "-v"})


# -- the command --------------------------------------------------------------------


class Command(BaseCommand):
    help = (
        "Watch a progress session in the terminal (watch), or list the sessions "
        "in a Redis progress cache (list)."
    )
    # A terminal tool that only reads: no system checks before every run.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{watch,list}")
        watch = actions.add_parser(
            "watch",
            help="Follow a session: live bars, or plain lines with --no-live.",
            description=(
                "Exit status: 0 complete, 1 a task failed, 2 cancelled, 3 expired or not "
                "found, 4 the stream or cache failed (or --timeout), 130 interrupted."
            ),
        )
        watch.add_argument("session_id", nargs="?", help="the session id (not with --url)")
        watch.add_argument(
            "--session",
            dest="session_option",
            metavar="SESSION_ID",
            help="the session id, for ids that start with '-' (--session=<id>); on the "
            "command line such an id also works in place",
        )
        watch.add_argument(
            "--url",
            help="read the site's NDJSON stream instead of the cache: "
            "https://site/progress/<id>/stream/",
        )
        watch.add_argument(
            "--cookie",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a cookie to send with --url (e.g. sessionid=...); repeatable",
        )
        watch.add_argument(
            "--header",
            action="append",
            default=[],
            metavar="'NAME: VALUE'",
            help="a header to send with --url; repeatable",
        )
        mode = watch.add_mutually_exclusive_group()
        mode.add_argument(
            "--live",
            dest="live",
            action="store_true",
            default=None,
            help="draw live bars even when the output is not a terminal",
        )
        mode.add_argument(
            "--no-live",
            dest="live",
            action="store_false",
            help="print plain lines on change (the default when the output is not a terminal)",
        )
        watch.add_argument(
            "--poll-interval",
            type=float,
            default=0.2,
            metavar="SECONDS",
            help="seconds between cache reads (default 0.2)",
        )
        watch.add_argument(
            "--line-interval",
            type=float,
            default=1.0,
            metavar="SECONDS",
            help="plain output: least seconds between two lines of one task whose status "
            "did not change (default 1)",
        )
        watch.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="give up (exit 4) after this long (default: follow until the session ends)",
        )
        watch.add_argument(
            "--read-timeout",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="--url: fail (exit 4) when the server sends nothing for this long (default 60)",
        )
        lister = actions.add_parser(
            "list", help="List the sessions in the progress cache (Redis only)."
        )
        lister.add_argument(
            "--limit",
            type=int,
            default=1000,
            help="list at most this many sessions (default 1000)",
        )

    def run_from_argv(self, argv: list[str]) -> None:
        """Two fixes to the command line before argparse reads it: Django's common
        options (``--settings`` ...) given after ``watch``/``list`` move before it
        (the sub-command's parser does not know them), and a session id that
        starts with "-" (which argparse would take for an option) becomes
        ``--session=<id>``: no option or value of this command looks like a
        session id (32 of ``[A-Za-z0-9_-]``)."""
        head, moved, rest = argv[:2], [], []
        args = iter(argv[2:])
        for arg in args:
            name = arg.split("=", 1)[0]
            if arg.startswith("-") and is_valid_session_id(arg):
                rest.append(f"--session={arg}")
            elif name in _COMMON_FLAGS or (name in _COMMON_OPTIONS and "=" in arg):
                moved.append(arg)
            elif arg in _COMMON_OPTIONS:
                moved += [arg, next(args, "")]
            else:
                rest.append(arg)
        super().run_from_argv([*head, *moved, *rest])

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            code = self.list_sessions(options["limit"])
        else:
            code = self.watch(options)
        self.stdout.flush()
        if code:
            raise SystemExit(code)

    # -- list ----------------------------------------------------------------------

    def list_sessions(self, limit: int) -> int:
        if not listing.supports_listing():
            alias = progress_settings.CACHE_ALIAS
            self.stdout.write(
                f"Listing sessions needs a Redis cache: the progress cache {alias!r} is not "
                "django.core.cache.backends.redis.RedisCache, and other caches cannot list "
                "their keys. Watch a session by its id: manage.py progress watch <session_id>"
            )
            return 0
        try:
            rows = listing.list_sessions(limit=limit)
        except (CacheUnavailable, listing.ListingUnsupported) as exc:
            self.stderr.write(f"Failed: {exc}")
            return EXIT_TRANSPORT
        if not rows:
            self.stdout.write("No sessions.")
            return 0
        self.stdout.write(f"{'SESSION ID':<32}  {'STATUS':<9}  {'%':>3}  {'TASKS':>5}  OWNER")
        for row in rows:
            self.stdout.write(
                f"{row.session_id:<32}  {row.status:<9}  {row.overall_percent:>3}  "
                f"{row.task_count:>5}  {row.owner or '-'}"
            )
        self.stdout.write(f"{len(rows)} session{'s' if len(rows) != 1 else ''}.")
        return 0

    # -- watch -----------------------------------------------------------------------

    def watch(self, options: dict[str, Any]) -> int:
        url = options["url"]
        if options["session_id"] is not None and options["session_option"] is not None:
            raise CommandError("Give the session id once.", returncode=EXIT_USAGE)
        session_id = options["session_id"] or options["session_option"]
        if (session_id is None) == (url is None):
            raise CommandError("Give a session id, or --url (not both).", returncode=EXIT_USAGE)
        if (options["cookie"] or options["header"]) and url is None:
            raise CommandError("--cookie and --header go with --url.", returncode=EXIT_USAGE)
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise CommandError("--url must be an http:// or https:// URL.", returncode=EXIT_USAGE)
        timeout = options["timeout"]
        deadline = None if timeout is None else time.monotonic() + timeout

        if url is not None:
            headers = credentials(options["cookie"], options["header"])
            snapshots = url_snapshots(url, headers, options["read_timeout"], deadline)
        else:
            snapshots = cache_snapshots(session_id, max(0.02, options["poll_interval"]), deadline)

        out = cast(TextIO, getattr(self.stdout, "_out", sys.stdout))
        display: PlainDisplay | LiveDisplay | None = None
        live = options["live"]
        if live is None:
            live = out.isatty()
        if live:
            display = live_display(out)
            if display is None:
                self.stderr.write(f"Live bars need rich: {INSTALL_HINT}. Printing plain lines.")
        if display is None:
            display = PlainDisplay(self.stdout.write, max(0.0, options["line_interval"]))

        last: SessionSnapshot | None = None
        try:
            for snap in snapshots:
                if snap != last:
                    display.show(snap)
                    last = snap
        except WatchFailed as exc:
            display.close(last)
            self.stdout.write(str(exc))
            return exc.code
        except KeyboardInterrupt:
            display.close(last)
            self.stdout.write("Interrupted: the session goes on.")
            return EXIT_INTERRUPTED
        display.close(last)
        code, summary = outcome(last)
        self.stdout.write(summary)
        return code
