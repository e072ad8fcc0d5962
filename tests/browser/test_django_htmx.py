"""Pages that load htmx with django-htmx (``{% load django_htmx %}``), as the docs
advise its users ("Which htmx" in docs/howto/customise.rst), in Chromium.

django-htmx 1.29 bundles htmx 2.0.10 and htmx 4. With ``{% htmx_script %}`` and
``{% progress_scripts htmx=False %}``, htmx is loaded once, and the bar reaches
"Complete" with either: htmx 4 over the stream; htmx 2.0.10, which cannot apply
the stream's ``<hx-partial>`` updates, by polling, said once in the console. The
package's own htmx (``{% progress_scripts %}``, beside ``{% django_htmx_script %}``)
streams with both."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.support.browser import LAUNCH_ARGS, Server
from tests.support.servers import run_server

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

PAGE = "/pages/django-htmx/"
#: What the console says, once, when the page's htmx cannot show the stream.
CANNOT = "cannot apply the stream's <hx-partial> updates"
#: htmx's own file (either copy), not an extension's.
CORE = re.compile(r"/htmx(\.org)?(-[0-9.]+)?(\.min)?\.js$")


@pytest.fixture(scope="module", params=[2, 4], ids=["htmx2", "htmx4"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    cache_dir = tempfile.mkdtemp(prefix="progress-browser-")
    env = {
        "DEMO_HTMX_VERSION": str(request.param),
        "PROGRESS_BROWSER_CACHE_DIR": cache_dir,
        "DEMO_SPEED": "3",
    }
    try:
        with run_server(
            "asgi",
            settings_module="tests.support.settings_pages",
            app="demo.asgi:application",
            env=env,
        ) as url:
            yield Server(url, "asgi", request.param)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**LAUNCH_ARGS)  # type: ignore[arg-type]
        yield browser
        browser.close()


class Watched:
    """A page, with what its console said and the progress requests it made."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        self.console.append(f"{message.type}: {message.text}")

    def _request(self, request: Any) -> None:
        if "/events/" in request.url or "transport=poll" in request.url:
            self.requests.append(request.url)

    def said(self, text: str) -> list[str]:
        return [line for line in self.console if text in line]


@pytest.fixture
def watched(chromium: Browser) -> Iterator[Watched]:
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield Watched(page)
    context.close()


def htmx_scripts(page: Page) -> list[str]:
    sources: list[str] = page.evaluate("[...document.scripts].map(s => s.src)")
    return [src for src in sources if CORE.search(src.split("?")[0])]


def run_quick_job(page: Page, before: str = "") -> str:
    """Start the quick job on the open page (whose component shows session
    ``before``, if any); wait until its bar says Complete."""
    page.click("button[data-job=quick]")
    box = page.locator(f'.pui-session:not([data-progress-session="{before}"])')
    expect(box).to_have_count(1)
    sid = box.get_attribute("data-progress-session")
    assert sid
    expect(box.locator(".pui-badge")).to_have_text("Complete", timeout=20_000)
    expect(box.locator(".pui-status")).to_have_text("All 2 tasks complete.")
    expect(box.locator('.pui-task [aria-valuenow="100"]')).to_have_count(2)
    return sid


def test_htmx_script_of_django_htmx_takes_the_bar_to_complete(
    watched: Watched, server: Server
) -> None:
    page = watched.page
    page.goto(server.url + PAGE)
    # One htmx: django-htmx's, of the version the markup is for.
    assert htmx_scripts(page) == [f"{server.url}/static/django_htmx/htmx-{server.htmx}.min.js"]
    version = str(page.evaluate("htmx.version"))
    assert version.startswith(f"{server.htmx}.")
    first = run_quick_job(page)
    second = run_quick_job(page, first)  # again: the console does not repeat itself
    assert not watched.said("loaded 2 times")
    polled = [url for url in watched.requests if "transport=poll" in url]
    if version == "2.0.10":
        # It cannot show the stream: the bar polls, and the console says why, once.
        (hint,) = watched.said(CANNOT)
        assert hint.startswith("warning: django-progress-ui: htmx 2.0.10 cannot apply")
        assert "poll instead" in hint
        assert {first, second} <= {url.split("/")[-3] for url in polled}
    else:
        assert watched.said("django-progress-ui") == []
        assert polled == []
        assert watched.requests == [
            f"{server.url}/progress/{first}/events/",
            f"{server.url}/progress/{second}/events/",
        ]


def test_the_packages_htmx_beside_django_htmx_streams(watched: Watched, server: Server) -> None:
    page = watched.page
    page.goto(server.url + PAGE + "?scripts=package")
    version = {2: "2.0.11", 4: "4.0.1"}[server.htmx]
    assert htmx_scripts(page) == [f"{server.url}/static/progress_ui/vendor/htmx-{version}.min.js"]
    sid = run_quick_job(page)
    assert watched.requests == [f"{server.url}/progress/{sid}/events/"]
    assert watched.said("django-progress-ui") == []
