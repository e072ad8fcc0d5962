"""Eight sessions on one page over one SSE connection, in a real browser.

Chromium opens at most 6 HTTP/1.1 connections per origin: with a stream per
session the 7th and 8th sessions, and every other request of the page, would
wait for a stream to end. The demo's "Run eight" button shows eight batches in
one group (``{% progress_group %}`` / ``render_group``), and the page must see
all eight finish over one connection while its other requests still go
through. Runs on uvicorn (ASGI) and gunicorn (WSGI), with htmx 2 and htmx 4.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_components import (  # noqa: F401  (fixtures)
    COMPLETE,
    app_page,
    browser_type_launch_args,
    chromium,
    samples,
    sse_requests,
)
from tests.support.browser import MODES, Server, open_event_sources, requests_while_time_passes
from tests.support.servers import run_server

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

GROUP_SIZE = 8
#: Slower than the other browser tests: each batch runs for 5 to 8 seconds, so
#: all eight are surely still running while the page makes its other requests.
SPEED = "0.6"


@pytest.fixture(scope="module", params=MODES, ids=[f"{k}-htmx{v}" for k, v in MODES])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    kind, htmx = request.param
    cache_dir = tempfile.mkdtemp(prefix="progress-browser-group-")
    env = {
        "DEMO_HTMX_VERSION": str(htmx),
        "PROGRESS_BROWSER_CACHE_DIR": cache_dir,
        "DEMO_SPEED": os.environ.get("DEMO_GROUP_SPEED", SPEED),
    }
    try:
        with run_server(
            kind,
            settings_module="tests.support.settings_browser",
            app=f"demo.{kind}:application",
            env=env,
        ) as url:
            yield Server(url, kind, htmx)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def start_group(page: Page, server: Server) -> list[str]:
    """Open the demo, press "Run eight", return the eight session ids."""
    page.goto(server.url + "/")
    expect(page.locator(".demo-tag")).to_have_text(f"htmx {server.htmx}")
    page.click("button[data-job=group]")
    sections = page.locator(".pui-group .pui-session")
    expect(sections).to_have_count(GROUP_SIZE)
    ids: list[str] = sections.evaluate_all("els => els.map(e => e.dataset.progressSession)")
    assert len(set(ids)) == GROUP_SIZE
    return ids


def test_eight_sessions_finish_over_one_connection(
    app_page: Page,  # noqa: F811  (the fixture, imported above)
    server: Server,
    sse_requests: list[str],  # noqa: F811
) -> None:
    page = app_page
    ids = start_group(page, server)
    # One element connects, for all eight.
    expect(page.locator("[sse-connect], [hx-sse\\:connect]")).to_have_count(1)
    expect(page.locator(".pui-group[data-progress-group]")).to_have_count(1)

    # Every bar has moved: the stream feeds all eight.
    bars = page.locator('.pui-group .pui-task [role="progressbar"]')
    expect(bars).to_have_count(GROUP_SIZE)
    for n in range(GROUP_SIZE):
        expect(bars.nth(n)).not_to_have_attribute("aria-valuenow", "0", timeout=20_000)

    # Meanwhile the page's ordinary requests go through at once: had each session
    # its own stream, 6 would hold every connection until their jobs ended, and
    # these answers would come only then (saying "complete").
    statuses = page.evaluate(
        """ids => Promise.all(ids.map(id =>
             fetch(`/progress/${id}/json/`, {credentials: "same-origin"})
               .then(r => r.ok ? r.json() : {status: `HTTP ${r.status}`})
               .then(j => j.status)))""",
        ids,
    )
    assert statuses == ["running"] * GROUP_SIZE, statuses

    # All eight finish: badges, status lines, bars at 100.
    expect(page.locator(".pui-group .pui-status")).to_have_text(
        [COMPLETE] * GROUP_SIZE, timeout=60_000
    )
    expect(page.locator('.pui-group .pui-task [aria-valuenow="100"]')).to_have_count(GROUP_SIZE)
    expect(page.locator(".pui-group .pui-badge")).to_have_text(["Complete"] * GROUP_SIZE)
    recorded = {k: v for k, v in samples(page).items() if any(sid in k for sid in ids)}
    assert len(recorded) == GROUP_SIZE
    for region, values in recorded.items():
        assert values == sorted(values), f"{region} went backwards: {values}"
        assert values[-1] == 100, region

    # One connection in all, for the eight ids, closed by done and not reopened.
    assert requests_while_time_passes(page, server.reconnect_wait) == []
    assert open_event_sources(page) == 0
    assert len(sse_requests) == 1, sse_requests
    url = urlsplit(sse_requests[0])
    assert url.path == "/progress/events/"
    assert parse_qs(url.query)["session"] == ids


def test_a_blocked_group_stream_falls_back_to_polling_each_session(
    app_page: Page,  # noqa: F811  (the fixture, imported above)
    server: Server,
    sse_requests: list[str],  # noqa: F811
) -> None:
    """A proxy that blocks event streams: the group gives up its connection and
    each of its components polls until its session has finished."""
    page = app_page
    page.route(re.compile(r".*/progress/events/\?.*"), lambda route: route.abort())
    ids = start_group(page, server)
    expect(page.locator(".pui-status")).to_have_text([COMPLETE] * GROUP_SIZE, timeout=90_000)
    expect(page.locator('.pui-task [aria-valuenow="100"]')).to_have_count(GROUP_SIZE)
    # The group element was replaced by a plain one: no connection is left.
    expect(page.locator("[data-progress-group]")).to_have_count(0)
    expect(page.locator("[sse-connect], [hx-sse\\:connect]")).to_have_count(0)
    polled = {sid for sid in ids for u in sse_requests if f"/{sid}/html/?transport=poll" in u}
    assert polled == set(ids)
    assert "/progress/events/?" in sse_requests[0], "the group's connection was tried first"
