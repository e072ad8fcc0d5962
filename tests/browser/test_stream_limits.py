"""A WSGI server's stream limits in a real browser, htmx 2 and htmx 4: a component
refused a stream (503 beyond ``MAX_STREAMS``) polls and finishes; a stream past
``WSGI_MAX_STREAM_DURATION`` tells its component to poll (``progress-poll``),
which finishes without ever reconnecting to a stream."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, Response, expect

from tests.browser.test_components import (  # noqa: F401 (fixtures, used by name)
    app_page,
    browser_type_launch_args,
    chromium,
    component,
    sse_requests,
    start,
    wait_finished,
)
from tests.support.browser import Server, requests_while_time_passes, watch
from tests.support.servers import run_server

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

HTMX = [2, 4]


def demo_server(htmx: int, ui: dict[str, Any]) -> Iterator[Server]:
    cache_dir = tempfile.mkdtemp(prefix="progress-browser-")
    env = {
        "DEMO_HTMX_VERSION": str(htmx),
        "PROGRESS_BROWSER_CACHE_DIR": cache_dir,
        "DEMO_SPEED": os.environ.get("DEMO_SPEED", "3"),
        "PROGRESS_TEST_UI": json.dumps(ui),
    }
    try:
        with run_server(
            "wsgi",
            settings_module="tests.support.settings_browser",
            app="demo.wsgi:application",
            env=env,
        ) as url:
            yield Server(url, "wsgi", htmx)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


@pytest.fixture(scope="module", params=HTMX, ids=[f"wsgi-htmx{v}" for v in HTMX])
def one_stream(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server that keeps one stream open at a time."""
    yield from demo_server(request.param, {"MAX_STREAMS": 1})


@pytest.fixture(scope="module", params=HTMX, ids=[f"wsgi-htmx{v}" for v in HTMX])
def short_streams(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server whose streams last 1.5 s (the rows job takes about 6 s)."""
    yield from demo_server(request.param, {"WSGI_MAX_STREAM_DURATION": 1.5})


def stream_statuses(page: Page) -> list[int]:
    """The HTTP status of every SSE response the page gets, as they arrive."""
    statuses: list[int] = []

    def on_response(response: Response) -> None:
        if "/events/" in response.url:
            statuses.append(response.status)

    page.on("response", on_response)
    return statuses


def polls(requests: list[str]) -> list[str]:
    return [url for url in requests if "transport=poll" in url]


def test_a_component_beyond_the_cap_polls_and_finishes(
    app_page: Page,  # noqa: F811
    one_stream: Server,
    sse_requests: list[str],  # noqa: F811
) -> None:
    first = stream_statuses(app_page)
    sid = start(app_page, one_stream, "rows")  # this tab's stream takes the one place
    box = component(app_page, sid)
    expect(box).to_have_attribute("data-pui-received", "1")

    other_requests: list[str] = []
    other = watch(app_page.context.new_page(), other_requests)
    second = stream_statuses(other)
    other.goto(f"{one_stream.url}/session/{sid}/")
    wait_finished(other, sid)
    wait_finished(app_page, sid)

    # The second tab was refused a stream, polled instead, and got the final state.
    # (htmx 2's extension retries once, 0.5 s later, even for the replaced element.)
    refused = len(second)
    assert second == [503] * refused and refused <= (2 if one_stream.htmx == 2 else 1)
    assert other_requests[0].endswith("/events/")
    assert len(polls(other_requests)) == len(other_requests) - refused > 0
    bars = component(other, sid).locator('.pui-task [role="progressbar"]')
    expect(bars).to_have_count(1)
    expect(bars.first).to_have_attribute("aria-valuenow", "100")
    # The first streamed to the end, and neither reconnected to a stream.
    assert first == [200]
    assert sse_requests == [f"{one_stream.url}/progress/{sid}/events/"]
    assert requests_while_time_passes(other, one_stream.reconnect_wait) == []
    assert len([u for u in other_requests if "/events/" in u]) == refused


def test_a_stream_past_its_duration_switches_the_component_to_polling(
    app_page: Page,  # noqa: F811
    short_streams: Server,
    sse_requests: list[str],  # noqa: F811
) -> None:
    statuses = stream_statuses(app_page)
    sid = start(app_page, short_streams, "rows")
    box = component(app_page, sid)
    expect(box).to_have_attribute("data-pui-received", "1")  # it streamed first
    wait_finished(app_page, sid)
    expect(box.locator('.pui-task [role="progressbar"]').first).to_have_attribute(
        "aria-valuenow", "100"
    )
    # One stream, told to poll after 1.5 s; then polls only, never a new stream.
    assert statuses == [200]
    assert sse_requests[0] == f"{short_streams.url}/progress/{sid}/events/"
    assert polls(sse_requests) == sse_requests[1:] and sse_requests[1:]
    # More than two poll intervals, and any reconnect delay, pass in the page.
    assert requests_while_time_passes(app_page, 4.5) == [], (
        "polling stops once the session has finished"
    )
