"""A Redis that restarts empty under an open page (issue 21 M): Chromium used to show
"This progress is no longer available." under a bar still reading "In progress 60 %
· about 5 seconds left", with a Cancel button. Once the page learns the session is
gone, nothing on it may look live.

A redis-server of the test's own on a free port (no persistence) is the progress
cache of a real server (uvicorn, gunicorn) and of this process, which plays the
worker: it reports progress, then Redis is stopped by PID and started again,
empty, and the work writes nothing more (it finished during the outage, in a
process that is gone).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.conf import settings
from django.test import override_settings
from playwright.sync_api import Page, expect

from progress_ui import ProgressSession
from progress_ui.engine import liveness
from tests.browser.test_components import (  # noqa: F401  (fixtures)
    app_page,
    browser_type_launch_args,
    chromium,
    component,
    sse_requests,
)
from tests.integration.test_cache_outage import free_port, start_redis
from tests.support.browser import Server
from tests.support.servers import run_server
from tests.support.workers import stop_process

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

MODES = [("asgi", 2), ("wsgi", 4)]
#: Seconds Redis stays down: long enough for every open stream to notice.
OUTAGE = 3.0
GONE = "This progress is no longer available."


@pytest.fixture(scope="module", params=MODES, ids=[f"{k}-htmx{v}" for k, v in MODES])
def deployment(request: pytest.FixtureRequest) -> Iterator[tuple[Server, dict[str, Any]]]:
    """A server whose progress cache is a private Redis; the Redis's state."""
    kind, htmx = request.param
    port = free_port()
    redis: dict[str, Any] = {"port": port, "server": start_redis(port)}
    url = f"redis://127.0.0.1:{port}/0"
    # A short grace: a stream that finds the session gone says so after 2 s.
    ui = {"HTMX_VERSION": htmx, "MISSING_GRACE": 2.0}
    env = {"PROGRESS_TEST_CACHE": "redis", "REDIS_URL": url, "PROGRESS_TEST_UI": json.dumps(ui)}
    try:
        with run_server(kind, settings_module="tests.support.settings", env=env) as base:
            redis["url"] = url
            yield Server(base, kind, htmx), redis
    finally:
        stop_process(redis["server"])


@pytest.fixture
def cache(deployment: tuple[Server, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """This process uses the same private Redis as the server."""
    _, redis = deployment
    alias = {**cast("dict[str, Any]", settings.CACHES["redis"]), "LOCATION": redis["url"]}
    with override_settings(
        CACHES={**settings.CACHES, "redis": alias},
        PROGRESS_UI={"CACHE_ALIAS": "redis", "COMPLETING_DURATION": 0.0},
    ):
        yield redis


def report(session: ProgressSession, stop: threading.Event) -> None:
    """The work: a row every 0.4 s of 40, until told to stop (Redis is restarting)."""
    for row in range(1, 40):
        if stop.wait(0.4):
            return
        session.update("import", current=row, total=40)


def test_a_bar_lost_by_a_redis_restart_is_not_left_live(
    app_page: Page,  # noqa: F811  (the fixture, imported above)
    deployment: tuple[Server, dict[str, Any]],
    cache: dict[str, Any],
) -> None:
    server, _ = deployment
    session = ProgressSession.create({"import": "Import products"})
    session.update("import", current=0, total=40)
    stop = threading.Event()
    worker = threading.Thread(target=report, args=(session, stop), daemon=True)
    worker.start()
    try:
        app_page.goto(f"{server.url}/tests-cancellable-page/{session.session_id}/")
        box = component(app_page, session.session_id)
        bar = box.locator('.pui-task[data-task="import"]')
        # Live: running, counted, with time left and a Cancel button.
        expect(bar.locator(".pui-bar__state")).to_have_text("In progress")
        expect(bar.locator(".pui-bar__timing")).to_have_text(re.compile("left"), timeout=30_000)
        expect(box.locator(".pui-cancel__button")).to_be_visible()

        # The work finishes during the outage; Redis comes back empty.
        stop.set()
        worker.join(5)
        stop_process(cache["server"])
        time.sleep(OUTAGE)  # (real time: the server's streams must see the outage)
        cache["server"] = start_redis(cache["port"])
        assert ProgressSession.get(session.session_id) is None

        expect(box.locator(".pui-status")).to_have_text(GONE, timeout=60_000)
    finally:
        stop.set()
        liveness.release(session.session_id, "import")  # nothing runs it any more

    # Nothing on the page looks live.
    expect(box.locator(".pui-cancel__button")).to_be_hidden()
    expect(bar.locator(".pui-bar__state")).to_have_text("Expired")
    expect(box.locator(".pui-badge")).not_to_have_text("In progress")
    expect(box.locator(".pui-bar__timing")).to_have_count(0)
    expect(box.locator(".pui-bar__count")).to_have_count(0)
    # No percent but nothing (as the server draws an expired bar: an empty one).
    shown = box.locator(".pui-bar__percent, .pui-summary__percent").all_text_contents()
    assert all(text.strip() in ("", "0%") for text in shown), shown
    values = box.locator("[role=progressbar]").evaluate_all(
        "bars => bars.map(b => b.getAttribute('aria-valuenow'))"
    )
    assert all(value in (None, "0") for value in values), values
    expect(box.locator(".pui-bar--running, .pui-bar--simulated")).to_have_count(0)
    assert "left" not in box.inner_text()
