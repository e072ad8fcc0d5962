"""ASGI scopes for driving an application in-process (tests and benchmarks)."""

from __future__ import annotations

from typing import Any


def http_get(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    """The scope of an HTTP/1.1 ``GET path`` (a query string after ``?``) to
    ``testserver`` from a loopback client."""
    path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
