"""When work ends: the settle events (``progress:complete``, ``progress:error``,
``progress:cancelled``) fire once per session, on the component, bubbling to the
document, under htmx 2 and 4, WSGI and ASGI, streamed or polled; htmx alone
refreshes part of the page on them; a completed report sends the browser to its
download; a reload keeps the bar; a failed start says so in place."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from progress_ui import ProgressSession
from progress_ui.contrib.threads import QueueUnavailable
from tests.browser import test_components as base
from tests.browser.test_components import COMPLETE, component, start, wait_finished
from tests.support.browser import MODES, Server, requests_while_time_passes, watch
from tests.support.servers import run_server

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

# The demo's servers (WSGI and ASGI, htmx 2 and 4), Chromium and its pages, as there.
server = base.server
chromium = base.chromium
browser_type_launch_args = base.browser_type_launch_args
app_page = base.app_page
sse_requests = base.sse_requests

#: Records every settle event the document hears.
RECORDER = """
window.__events = [];
for (const name of ['progress:complete', 'progress:error', 'progress:cancelled']) {
  document.addEventListener(name, (event) => window.__events.push({
    name, detail: event.detail,
    target: event.target.getAttribute('data-progress-session'),
  }));
}
"""


def record(page: Page) -> Page:
    page.add_init_script(RECORDER)
    return page


def events(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("window.__events")
    return found


def wait_events(page: Page, count: int) -> list[dict[str, Any]]:
    page.wait_for_function(f"window.__events.length >= {count}")
    return events(page)


def test_complete_fires_once_with_its_detail_and_htmx_refreshes_on_it(
    app_page: Page, server: Server
) -> None:
    record(app_page)
    sid = start(app_page, server, "quick")
    finished = app_page.locator(".demo-finished")
    expect(finished).to_have_text("No job has completed yet.")
    (event,) = wait_events(app_page, 1)
    assert event["name"] == "progress:complete"
    assert event["target"] == sid
    detail = event["detail"]
    assert detail["sessionId"] == sid
    assert (detail["status"], detail["percent"], detail["expired"]) == ("complete", 100, False)
    assert detail["tasks"] == {
        "one": {"status": "complete", "percent": 100},
        "two": {"status": "complete", "percent": 100},
    }
    assert (detail["result"], detail["results"]) == (None, [])
    # hx-trigger="progress:complete from:body": htmx fetched the line again.
    expect(finished).to_have_text("1 of your recent jobs completed.")
    # Once: not again as time passes, nor after a reload of the page.
    requests_while_time_passes(app_page, server.reconnect_wait)
    assert len(events(app_page)) == 1
    app_page.reload()
    wait_finished(app_page, sid)
    requests_while_time_passes(app_page, 1)
    assert events(app_page) == []


def test_an_error_fires_progress_error(app_page: Page, server: Server) -> None:
    record(app_page)
    sid = start(app_page, server, "fail")
    (event,) = wait_events(app_page, 1)
    assert (event["name"], event["target"]) == ("progress:error", sid)
    assert event["detail"]["status"] == "error"
    assert event["detail"]["tasks"]["upload"]["status"] == "error"
    assert event["detail"]["tasks"]["export"] == {"status": "complete", "percent": 100}
    expect(app_page.locator(".demo-finished")).to_have_text("No job has completed yet.")


def test_a_cancel_fires_progress_cancelled(app_page: Page, server: Server) -> None:
    record(app_page)
    sid = start(app_page, server, "import")
    expect(component(app_page, sid).locator(".pui-badge")).to_have_text("In progress")
    component(app_page, sid).locator(".pui-cancel__button").click()
    (event,) = wait_events(app_page, 1)
    assert (event["name"], event["target"]) == ("progress:cancelled", sid)
    assert event["detail"]["status"] == "cancelled"
    requests_while_time_passes(app_page, server.reconnect_wait)
    assert len(events(app_page)) == 1


def test_a_polled_component_fires_complete_once(app_page: Page, server: Server) -> None:
    record(app_page)
    app_page.route("**/events/", lambda route: route.abort())
    sid = start(app_page, server, "quick")
    expect(component(app_page, sid).locator(".pui-status")).to_have_text(COMPLETE, timeout=60_000)
    (event,) = wait_events(app_page, 1)
    assert (event["name"], event["target"]) == ("progress:complete", sid)
    expect(app_page.locator(".demo-finished")).to_have_text("1 of your recent jobs completed.")
    assert requests_while_time_passes(app_page, 4.5) == []
    assert len(events(app_page)) == 1


def test_a_reload_keeps_the_bar_and_the_report_downloads_when_complete(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    app_page.goto(server.url + "/report/")
    expect(app_page.locator(".pui-session")).to_have_count(0)
    with app_page.expect_download(timeout=30_000) as download_info:
        app_page.click("button[data-job=report]")
        box = app_page.locator(".pui-session")
        expect(box.locator(".pui-badge")).to_have_text("In progress")
        sid = box.get_attribute("data-progress-session")
        # A reload while it runs: the page shows the same session and streams it.
        app_page.reload()
        again = component(app_page, str(sid))
        expect(again).to_have_count(1)
        expect(again.locator(".pui-badge")).to_have_text(re.compile("In progress|Complete"))
    download = download_info.value
    assert download.suggested_filename == "sales-report.csv"
    text = download.path().read_text(encoding="utf-8")
    assert text.startswith("order,amount\n") and "ORD-0120" in text
    # Once the browser went to the download, the page stays: a complete bar.
    expect(component(app_page, str(sid)).locator(".pui-badge")).to_have_text("Complete")
    assert sum(f"/progress/{sid}/events/" in url for url in sse_requests) >= 2


def test_a_finished_report_is_still_shown_on_a_later_visit_without_downloading_again(
    app_page: Page, server: Server
) -> None:
    app_page.goto(server.url + "/report/")
    with app_page.expect_download(timeout=30_000):
        app_page.click("button[data-job=report]")
    downloads: list[Any] = []
    app_page.on("download", lambda download: downloads.append(download))
    app_page.goto(server.url + "/report/")
    box = app_page.locator(".pui-session")
    expect(box.locator(".pui-badge")).to_have_text("Complete")
    expect(box.locator(".pui-next__link")).to_have_attribute(
        "href", re.compile(r"^/report/[\w-]+\.csv$")
    )
    requests_while_time_passes(app_page, 2)
    assert downloads == []


# -- a start the runner refuses -----------------------------------------------------------


def queue_down(session: ProgressSession, job: str, kwargs: dict[str, Any]) -> object:
    """A runner whose queue cannot be reached (as a broker that is down)."""
    raise QueueUnavailable("the broker at 127.0.0.1:1 refused the connection")


@pytest.fixture(scope="module", params=MODES, ids=[f"{k}-htmx{v}" for k, v in MODES])
def refusing_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    kind, htmx = request.param
    cache_dir = tempfile.mkdtemp(prefix="progress-browser-")
    env = {
        "DEMO_HTMX_VERSION": str(htmx),
        "PROGRESS_BROWSER_CACHE_DIR": cache_dir,
        "PROGRESS_TEST_UI": '{"RUNNER": "tests.browser.test_events.queue_down"}',
        "DEMO_SPEED": os.environ.get("DEMO_SPEED", "3"),
    }
    try:
        with run_server(
            kind, settings_module="tests.support.settings_browser",
            app=f"demo.{kind}:application", env=env,
        ) as url:  # fmt: skip
            yield Server(url, kind, htmx)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def test_a_refused_start_says_so_in_place(chromium: Browser, refusing_server: Server) -> None:
    context = chromium.new_context()
    try:
        page = watch(context.new_page(), [])
        page.goto(refusing_server.url + "/")
        page.click("button[data-job=quick]")
        alert = page.locator("#jobs .pui-start-error")
        expect(alert).to_have_text(
            "Could not start: the service is unavailable, please try again in a moment."
        )
        expect(alert).to_have_attribute("role", "alert")
        assert "broker" not in page.content()  # the reason shows under DEBUG only
    finally:
        context.close()
