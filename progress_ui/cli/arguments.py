"""The watcher's command line: rewriting argv for argparse, checking the options."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import CommandError

from progress_ui.cli.exits import EXIT_USAGE
from progress_ui.core.validation import is_valid_session_id

#: Django's options for every command, and those of them that take a value.
COMMON_FLAGS = frozenset({"--traceback", "--no-color", "--force-color"})
COMMON_OPTIONS = frozenset({"--settings", "--pythonpath", "--verbosity", "-v"})


def rewrite_argv(argv: list[str]) -> list[str]:
    """Two fixes to ``manage.py progress ...`` before argparse reads it: Django's
    common options (``--settings`` ...) given after ``watch``/``list`` move before
    it (the sub-command's parser does not know them), and a session id that
    starts with "-" (which argparse would take for an option) becomes
    ``--session=<id>``: no option or value of this command looks like a session
    id (32 of ``[A-Za-z0-9_-]``)."""
    head, moved, rest = argv[:2], [], []
    args = iter(argv[2:])
    for arg in args:
        name = arg.split("=", 1)[0]
        if arg.startswith("-") and is_valid_session_id(arg):
            rest.append(f"--session={arg}")
        elif name in COMMON_FLAGS or (name in COMMON_OPTIONS and "=" in arg):
            moved.append(arg)
        elif arg in COMMON_OPTIONS:
            moved += [arg, next(args, "")]
        else:
            rest.append(arg)
    return [*head, *moved, *rest]


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=EXIT_USAGE)


def credentials(cookies: list[str], headers: list[str]) -> dict[str, str]:
    """Request headers from ``--cookie NAME=VALUE`` and ``--header "Name: value"``."""
    out: dict[str, str] = {}
    for header in headers:
        name, sep, value = header.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or any(c in header for c in "\r\n\0"):
            raise usage_error(f"--header takes 'Name: value', got {header!r}")
        out[name] = value
    pairs = []
    for cookie in cookies:
        name, sep, value = cookie.partition("=")
        if not sep or not name.strip() or any(c in cookie for c in ";\r\n\0"):
            raise usage_error(f"--cookie takes NAME=VALUE, got {name!r}=...")
        pairs.append(f"{name.strip()}={value.strip()}")
    if pairs:
        out["Cookie"] = "; ".join([out["Cookie"], *pairs] if "Cookie" in out else pairs)
    return out


@dataclass(frozen=True)
class WatchRequest:
    """What ``watch`` was asked, checked: a session id, or a URL with its headers."""

    session_id: str | None
    url: str | None
    headers: dict[str, str]
    #: True/False from --live/--no-live; None: live when the output is a terminal.
    live: bool | None
    poll_interval: float
    line_interval: float
    timeout: float | None
    read_timeout: float


def _seconds(option: str, value: float | None, *, positive: bool) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise usage_error(f"{option} takes a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise usage_error(f"{option} must be {'above' if positive else 'at least'} 0")


def watch_request(options: dict[str, Any]) -> WatchRequest:
    """The ``watch`` options, checked; CommandError (exit 64) for a bad one."""
    url = options["url"]
    if options["session_id"] is not None and options["session_option"] is not None:
        raise usage_error("Give the session id once.")
    session_id = options["session_id"] or options["session_option"]
    if (session_id is None) == (url is None):
        raise usage_error("Give a session id, or --url (not both).")
    if (options["cookie"] or options["header"]) and url is None:
        raise usage_error("--cookie and --header go with --url.")
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise usage_error("--url must be an http:// or https:// URL.")
    for option, positive in (("timeout", False), ("read_timeout", True)):
        _seconds(f"--{option.replace('_', '-')}", options[option], positive=positive)
    return WatchRequest(
        session_id=session_id,
        url=url,
        headers=credentials(options["cookie"], options["header"]) if url else {},
        live=options["live"],
        poll_interval=max(0.02, options["poll_interval"]),
        line_interval=max(0.0, options["line_interval"]),
        timeout=options["timeout"],
        read_timeout=options["read_timeout"],
    )
