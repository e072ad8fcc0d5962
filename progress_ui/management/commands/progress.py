"""``manage.py progress watch|list``: follow a session from a terminal, list sessions.

``watch <session_id>`` follows the session in the progress cache (as the NDJSON
view does) and draws one bar per task and the overall bar with ``rich``
(``pip install "django-progress-ui[watch]"``); ``--no-live``, or an output that
is not a terminal, prints plain lines instead (no ``rich`` needed).
``watch --url https://site/progress/<id>/stream/`` reads the site's NDJSON
endpoint instead, with ``--cookie NAME=VALUE`` / ``--header "Name: value"`` as
credentials (standard library HTTP only). Exit statuses: ``progress_ui.cli.watch``.

``list`` shows the newest sessions of the session index, on any shared cache
(``progress_ui.engine.listing``).

This module parses the options and dispatches; the watcher is ``progress_ui.cli``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from progress_ui.cli.arguments import rewrite_argv, watch_request
from progress_ui.cli.exits import EXIT_CLOSED_PIPE
from progress_ui.cli.session_list import list_sessions
from progress_ui.cli.snapshots import MAX_TASKS
from progress_ui.cli.watch import watch


class Command(BaseCommand):
    help = "Watch a progress session in the terminal (watch), or list the newest sessions (list)."
    # A terminal tool that only reads: no system checks before every run.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{watch,list}")
        watcher = actions.add_parser(
            "watch",
            help="Follow a session: live bars, or plain lines with --no-live.",
            description=(
                "Exit status: 0 complete, 1 a task failed, 2 cancelled, 3 expired or not "
                "found, 4 the stream or cache failed, the server sent something that is "
                "not a snapshot, or --timeout passed; 64 a bad option, 130 interrupted. "
                f"The first {MAX_TASKS} tasks seen are drawn; others are only counted."
            ),
        )
        watcher.add_argument("session_id", nargs="?", help="the session id (not with --url)")
        watcher.add_argument(
            "--session",
            dest="session_option",
            metavar="SESSION_ID",
            help="the session id, for ids that start with '-' (--session=<id>); on the "
            "command line such an id also works in place",
        )
        watcher.add_argument(
            "--url",
            help="read the site's NDJSON stream instead of the cache: "
            "https://site/progress/<id>/stream/",
        )
        watcher.add_argument(
            "--cookie",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a cookie to send with --url (e.g. sessionid=...); repeatable",
        )
        watcher.add_argument(
            "--header",
            action="append",
            default=[],
            metavar="'NAME: VALUE'",
            help="a header to send with --url; repeatable",
        )
        mode = watcher.add_mutually_exclusive_group()
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
        watcher.add_argument(
            "--poll-interval",
            type=float,
            default=0.2,
            metavar="SECONDS",
            help="seconds between cache reads (default 0.2)",
        )
        watcher.add_argument(
            "--line-interval",
            type=float,
            default=1.0,
            metavar="SECONDS",
            help="plain output: least seconds between two lines of one task whose status "
            "did not change (default 1)",
        )
        watcher.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="give up (exit 4) this long after the start, whatever the server sends "
            "(default: follow until the session ends)",
        )
        watcher.add_argument(
            "--read-timeout",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="--url: fail (exit 4) when the server sends no byte for this long (default 60)",
        )
        lister = actions.add_parser(
            "list", help="List the newest sessions in the progress cache, newest first."
        )
        lister.add_argument(
            "--limit",
            type=int,
            default=1000,
            help="list at most this many sessions (default 1000)",
        )

    def run_from_argv(self, argv: list[str]) -> None:
        super().run_from_argv(rewrite_argv(argv))

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "list":
                code = list_sessions(options["limit"], self.stdout.write, self.stderr.write)
            else:
                code = watch(watch_request(options), self.stdout, self.stderr)
            self.stdout.flush()
        except BrokenPipeError:
            # The reader went away (`progress list | head`): stop quietly, as a
            # command killed by SIGPIPE would. Python flushes stdout again at
            # exit, so point it at /dev/null first (the `signal` module's docs).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = EXIT_CLOSED_PIPE
        if code:
            raise SystemExit(code)
