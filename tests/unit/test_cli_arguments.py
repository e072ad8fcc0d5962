"""The watcher's command line: argv rewriting, credentials, option checks."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import CommandError

from progress_ui.cli.arguments import credentials, rewrite_argv, watch_request

SESSION = "-" + "A" * 31


def test_rewrite_argv_moves_common_options_and_protects_dash_ids() -> None:
    argv = ["manage.py", "progress", "watch", SESSION, "--settings", "x.y", "--traceback"]
    assert rewrite_argv(argv) == [
        "manage.py", "progress", "--settings", "x.y", "--traceback",
        "watch", f"--session={SESSION}",
    ]  # fmt: skip
    assert rewrite_argv(["m", "progress", "list", "-v=2"]) == ["m", "progress", "-v=2", "list"]


def test_credentials_make_headers() -> None:
    headers = credentials(["sessionid=abc", "csrftoken=x"], ["X-Api-Key: k:1"])
    assert headers == {"X-Api-Key": "k:1", "Cookie": "sessionid=abc; csrftoken=x"}
    for cookies, headers_ in ((["novalue"], []), (["a=b; c=d"], []), ([], ["X: a\r\nY: b"])):
        with pytest.raises(CommandError) as caught:
            credentials(cookies, headers_)
        assert caught.value.returncode == 64


def options(**changes: Any) -> dict[str, Any]:
    base = {
        "url": None, "session_id": "A" * 32, "session_option": None, "cookie": [],
        "header": [], "live": None, "poll_interval": 0.2, "line_interval": 1.0,
        "timeout": None, "read_timeout": 60.0,
    }  # fmt: skip
    return {**base, **changes}


@pytest.mark.parametrize(
    "changes",
    [
        {"session_option": "B" * 32},
        {"session_id": None},
        {"url": "http://x/"},
        {"cookie": ["a=b"]},
        {"session_id": None, "url": "file:///etc/passwd"},
        {"timeout": float("nan")},
        {"timeout": -1.0},
        {"read_timeout": 0.0},
        {"read_timeout": float("inf")},
    ],
)
def test_bad_options_exit_64(changes: dict[str, Any]) -> None:
    with pytest.raises(CommandError) as caught:
        watch_request(options(**changes))
    assert caught.value.returncode == 64


def test_good_options() -> None:
    request = watch_request(
        options(session_id=None, url="https://site/p/x/stream/", header=["A: b"], timeout=3.0)
    )
    assert (request.url, request.headers, request.timeout) == (
        "https://site/p/x/stream/",
        {"A": "b"},
        3.0,
    )
    assert watch_request(options(poll_interval=0.0)).poll_interval == 0.02
