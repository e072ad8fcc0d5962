"""The opt-in tab title and notification, on the demo's report page (which opts
in: ``progress_tab_title`` and ``progress_notify`` on its view), under htmx 2 and
4, WSGI and ASGI, streamed or polled: the page's title shows the percent while
the report runs, then its outcome; a notification comes once it ends, only when
the person clicked "Notify me when done", and the permission is asked on that
click, never on load. A component that does not opt in changes neither."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser import test_components as base
from tests.browser.test_components import start, wait_finished
from tests.support.browser import Server, requests_while_time_passes, watch

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

# The demo's servers (WSGI and ASGI, htmx 2 and 4), Chromium and its pages, as there.
server = base.server
chromium = base.chromium
browser_type_launch_args = base.browser_type_launch_args
app_page = base.app_page
sse_requests = base.sse_requests

OWN = "Sales report - django-progress-ui demo"
RUNNING = re.compile(r"^(\d+)% · " + re.escape(OWN) + "$")
#: Records every title the page shows, and every Notification constructed (before
#: the browser's own constructor runs, which may refuse headless).
RECORDER = """
window.__titles = [];
window.__notes = [];
window.__asked = 0;
const RealNotification = window.Notification;
window.Notification = class extends RealNotification {
  constructor(title, options) {
    window.__notes.push({ title, body: options && options.body, hidden: document.hidden });
    super(title, options);
  }
};
window.Notification.requestPermission = function () {
  window.__asked += 1;
  return RealNotification.requestPermission.apply(RealNotification, arguments);
};
new MutationObserver(() => {
  if (window.__titles[window.__titles.length - 1] !== document.title) {
    window.__titles.push(document.title);
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
#: Makes the tab look hidden, as another tab in front would (headless Chromium
#: keeps every page visible): htmx 4 pauses a stream then, unless told not to.
HIDE = """() => {
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def titles(page: Page) -> list[str]:
    found: list[str] = page.evaluate("window.__titles")
    return found


def notes(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("window.__notes")
    return found


def start_report(page: Page, server: Server) -> str:
    page.goto(server.url + "/report/")
    assert page.title() == OWN
    page.click("button[data-job=report]")
    box = page.locator(".pui-session")
    expect(box).to_have_count(1)
    sid = box.get_attribute("data-progress-session")
    assert sid
    return sid


def complete_title(page: Page) -> None:
    page.wait_for_function(f"document.title === {'Complete · ' + OWN!r}", timeout=30_000)


@pytest.mark.parametrize("transport", ["stream", "poll"])
def test_the_title_shows_the_percent_then_the_outcome(
    app_page: Page, server: Server, sse_requests: list[str], transport: str
) -> None:
    app_page.add_init_script(RECORDER)
    if transport == "poll":
        app_page.route("**/events/", lambda route: route.abort())
    sid = start_report(app_page, server)
    complete_title(app_page)
    seen = titles(app_page)
    percents = [int(m[1]) for m in map(RUNNING.match, seen) if m]
    assert any(0 < p < 100 for p in percents), seen
    assert percents == sorted(percents), seen
    assert seen[-1] == "Complete · " + OWN
    assert all(t == OWN or t.endswith(" · " + OWN) for t in seen), seen
    polled = [url for url in sse_requests if "transport=poll" in url]
    assert bool(polled) == (transport == "poll"), sse_requests
    # The title keeps the outcome; once the component leaves, the page's own comes back.
    requests_while_time_passes(app_page, server.reconnect_wait)
    assert app_page.title() == "Complete · " + OWN
    app_page.evaluate(f"document.querySelector('[data-progress-session=\"{sid}\"]').remove()")
    expect(app_page).to_have_title(OWN)


def test_the_title_follows_a_change_of_the_pages_own(app_page: Page, server: Server) -> None:
    app_page.add_init_script(RECORDER)
    start_report(app_page, server)
    app_page.wait_for_function("/^\\d+% · /.test(document.title)")
    app_page.evaluate("document.title = 'Renamed'")
    app_page.wait_for_function("document.title === 'Complete · Renamed'", timeout=30_000)


def test_without_the_opt_in_the_title_stays_and_no_button_shows(
    app_page: Page, server: Server
) -> None:
    app_page.add_init_script(RECORDER)
    sid = start(app_page, server, "quick")  # the demo's index: no opt-in
    own = app_page.title()
    wait_finished(app_page, sid)
    assert app_page.locator(".pui-notify").count() == 0
    assert set(titles(app_page)) <= {own}
    assert app_page.title() == own


# -- notifications -----------------------------------------------------------------------------


@pytest.fixture
def granted(chromium: Browser) -> Iterator[BrowserContext]:
    """A context where the site may notify (as once the person said yes)."""
    context = chromium.new_context(permissions=["notifications"])
    yield context
    context.close()


def report_page(context: BrowserContext) -> Page:
    page = watch(context.new_page(), [])
    page.set_default_timeout(20_000)
    page.add_init_script(RECORDER)
    return page


@pytest.mark.parametrize("transport", ["stream", "poll"])
def test_a_notification_only_after_the_click_and_in_a_background_tab(
    granted: BrowserContext, server: Server, transport: str
) -> None:
    page = report_page(granted)
    if transport == "poll":
        page.route("**/events/", lambda route: route.abort())
    start_report(page, server)
    button = page.get_by_role("button", name="Notify me when done")
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    page.evaluate(HIDE)  # the person went to another tab
    complete_title(page)  # updates went on in the background (an htmx 4 stream too)
    page.wait_for_function("window.__notes.length > 0")
    note = {"title": "Sales report", "body": "All 2 tasks complete.", "hidden": True}
    assert notes(page) == [note]
    assert page.evaluate("window.__asked") == 0  # granted already: not asked again
    expect(button).to_be_hidden()  # nothing to wait for any more


def test_no_notification_without_the_click(granted: BrowserContext, server: Server) -> None:
    page = report_page(granted)
    start_report(page, server)
    expect(page.get_by_role("button", name="Notify me when done")).to_be_visible()
    complete_title(page)
    requests_while_time_passes(page, 1)
    assert notes(page) == []


def test_the_permission_is_asked_on_the_click_never_on_load(
    chromium: Browser, server: Server
) -> None:
    context = chromium.new_context()  # the site has not asked yet
    try:
        page = report_page(context)
        start_report(page, server)
        button = page.get_by_role("button", name="Notify me when done")
        expect(button).to_be_visible()
        assert page.evaluate("[Notification.permission, window.__asked]") == ["default", 0]
        button.click()
        page.wait_for_function("window.__asked === 1")
        complete_title(page)
        # Headless Chromium answers no: no notification, and the button is gone.
        assert page.evaluate("Notification.permission") != "granted"
        assert notes(page) == []
        expect(button).to_have_count(0)
    finally:
        context.close()
