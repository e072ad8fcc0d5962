"""The demo in a real browser (Playwright driving Debian's Chromium), against
gunicorn (WSGI) and uvicorn (ASGI), with htmx 2 and htmx 4 markup.

Every test runs in each of the four modes (``MODES`` in ``tests/support/browser.py``);
screenshots of failures land in ``test-output/``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.browser import (
    LAUNCH_ARGS,
    MODES,
    OUTPUT,
    Server,
    let_polls_pass,
    open_event_sources,
    requests_while_time_passes,
    watch,
)
from tests.support.servers import run_server

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser_type_launch_args() -> dict[str, Any]:
    return dict(LAUNCH_ARGS)


@pytest.fixture(scope="module", params=MODES, ids=[f"{k}-htmx{v}" for k, v in MODES])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    kind, htmx = request.param
    cache_dir = tempfile.mkdtemp(prefix="progress-browser-")
    env = {
        "DEMO_HTMX_VERSION": str(htmx),
        "PROGRESS_BROWSER_CACHE_DIR": cache_dir,
        "DEMO_SPEED": os.environ.get("DEMO_SPEED", "3"),
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


@pytest.fixture
def sse_requests() -> list[str]:
    """URLs of the SSE requests made by pages that use :func:`watch`."""
    return []


@pytest.fixture(scope="module")
def chromium(browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    """Chromium for this module only.

    pytest-playwright's ``browser`` fixture is session-scoped: its sync
    Playwright keeps an event loop running in the main thread until the session
    ends, which breaks every asyncio test that runs after this module. So the
    browser (and Playwright's loop) stop with this module.
    """
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**browser_type_launch_args)
        yield browser
        browser.close()


@pytest.fixture
def app_page(
    chromium: Browser, sse_requests: list[str], request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A page in a fresh context, with the recorder and SSE request counting;
    saves a screenshot of every page of the context when the test fails."""
    context = chromium.new_context()
    # Page time flows as usual; "nothing happens" checks pause it and run it
    # forward (requests_while_time_passes) instead of sleeping.
    context.clock.install()
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch(page, sse_requests)
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before:
        OUTPUT.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        for n, p in enumerate(page.context.pages):
            try:
                p.screenshot(path=str(OUTPUT / f"{name}-{n}.png"), full_page=True)
            except Exception as exc:  # a crashed page must not hide the real failure
                print(f"screenshot failed: {exc}")
    context.close()


COMPLETE = re.compile(r"complete", re.I)


def start(page: Page, server: Server, job: str) -> str:
    """Open the demo, start ``job`` with its button, return the new session id."""
    page.goto(server.url + "/")
    expect(page.locator(".demo-tag")).to_have_text(f"htmx {server.htmx}")
    before = page.locator(".pui-session").count()
    page.click(f"button[data-job={job}]")
    expect(page.locator(".pui-session")).to_have_count(before + 1)
    sid = page.locator(".pui-session").first.get_attribute("data-progress-session")
    assert sid
    return sid


def component(page: Page, sid: str):  # type: ignore[no-untyped-def]
    return page.locator(f'.pui-session[data-progress-session="{sid}"]')


def wait_finished(page: Page, sid: str, pattern: re.Pattern[str] = COMPLETE) -> None:
    expect(component(page, sid).locator(".pui-status")).to_have_text(pattern, timeout=20_000)


def samples(page: Page) -> dict[str, list[float]]:
    result: dict[str, list[float]] = page.evaluate("window.__samples")
    return result


def test_bars_move_monotonically_to_100_and_the_stream_closes(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    sid = start(app_page, server, "import")
    wait_finished(app_page, sid)
    box = component(app_page, sid)

    recorded = {k: v for k, v in samples(app_page).items() if sid in k}
    assert len(recorded) == 3
    for region, values in recorded.items():
        assert values == sorted(values), f"{region} went backwards: {values}"
        assert values[-1] == 100, region
        assert len(values) >= 3, f"{region} never moved in steps: {values}"

    # Final state: every bar complete and drawn full width once the transition ends.
    expect(box.locator(".pui-badge")).to_have_text("Complete")
    expect(box.locator(".pui-bar__track.pui-bar--complete")).to_have_count(3)
    expect(box.locator(".pui-bar__count").last).to_have_text("250 of 250")
    # Once the width transition has ended (CSS, on the browser's real time).
    app_page.wait_for_function(
        """sid => [...document.querySelectorAll(
              `.pui-session[data-progress-session="${sid}"] .pui-bar__track`)]
            .every(t => t.firstElementChild.getBoundingClientRect().width
                        / t.getBoundingClientRect().width > 0.99)""",
        arg=sid,
    )

    # One connection, closed by the done event and never reopened.
    assert requests_while_time_passes(app_page, server.reconnect_wait) == []
    assert open_event_sources(app_page) == 0
    assert sse_requests == [f"{server.url}/progress/{sid}/events/"]


def test_error_shows_its_message(app_page: Page, server: Server, sse_requests: list[str]) -> None:
    sid = start(app_page, server, "fail")
    wait_finished(app_page, sid, re.compile("failed", re.I))
    box = component(app_page, sid)
    upload = box.locator('.pui-task[data-task="upload"]')
    expect(upload.locator(".pui-bar__track")).to_have_class(re.compile("pui-bar--error"))
    expect(upload.locator(".pui-bar__message--error")).to_have_text(
        "The storage quota is full (2.1 GB needed, 1.4 GB free)."
    )
    expect(upload.locator(".pui-bar__state")).to_have_text("Failed")
    expect(box.locator('.pui-task[data-task="export"] .pui-bar__state')).to_have_text("Complete")
    # The reason is said once, under its bar; the status names what failed.
    expect(box.locator(".pui-status")).to_have_text("Upload to storage failed.")
    expect(box.locator(".pui-summary__count")).to_have_text("1 of 2 tasks failed")
    assert box.inner_text().count("storage quota is full") == 1
    expect(box.locator(".pui-badge")).to_have_text("Failed")
    assert requests_while_time_passes(app_page, server.reconnect_wait) == []
    assert open_event_sources(app_page) == 0
    assert len(sse_requests) == 1


def test_reload_after_completion_shows_the_final_state(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    sid = start(app_page, server, "quick")
    wait_finished(app_page, sid)
    app_page.reload()
    box = component(app_page, sid)
    expect(box.locator(".pui-badge")).to_have_text("Complete")
    expect(box.locator(".pui-status")).to_have_text(COMPLETE)
    expect(box.locator('[role="progressbar"][aria-valuenow="100"]')).to_have_count(3)
    # A finished session renders without an SSE connection.
    assert box.locator("[sse-connect], [hx-sse\\:connect]").count() == 0
    assert requests_while_time_passes(app_page, 5) == []
    assert len(sse_requests) == 1


def test_two_tabs_watching_one_session_both_finish(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    sid = start(app_page, server, "import")
    other = watch(app_page.context.new_page(), sse_requests)
    other.goto(f"{server.url}/session/{sid}/")
    expect(component(other, sid).locator(".pui-badge")).to_have_text(
        re.compile("In progress|Waiting")
    )
    wait_finished(other, sid)
    wait_finished(app_page, sid)
    for tab in (app_page, other):
        expect(component(tab, sid).locator('.pui-task [aria-valuenow="100"]')).to_have_count(3)
    assert len(sse_requests) == 2


def test_task_name_with_script_renders_as_text(app_page: Page, server: Server) -> None:
    sid = start(app_page, server, "xss")
    wait_finished(app_page, sid)
    name = component(app_page, sid).locator('.pui-task[data-task="evil"] .pui-bar__name')
    expect(name).to_have_text(
        '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    )
    assert app_page.evaluate("window.__pwned") is None
    assert component(app_page, sid).locator("script, img").count() == 0


def test_accessibility_attributes_present_and_updated(app_page: Page, server: Server) -> None:
    sid = start(app_page, server, "quick")
    box = component(app_page, sid)
    live = box.locator(".pui-status")
    expect(live).to_have_attribute("role", "status")
    expect(live).to_have_attribute("aria-live", "polite")
    bars = box.locator('.pui-task [role="progressbar"]')
    expect(bars).to_have_count(2)
    for i in range(2):
        bar = bars.nth(i)
        expect(bar).to_have_attribute("aria-valuemin", "0")
        expect(bar).to_have_attribute("aria-valuemax", "100")
        labelled_by = bar.get_attribute("aria-labelledby")
        assert labelled_by
        label = app_page.locator(f'[id="{labelled_by}"]')
        expect(label).to_have_text(re.compile("batch"))
    # Mid-way: counts reach the accessible value text.
    expect(bars.first).to_have_attribute("aria-valuetext", re.compile(r"percent, \d+ of 30"))
    wait_finished(app_page, sid)
    for i in range(2):
        expect(bars.nth(i)).to_have_attribute("aria-valuenow", "100")
        expect(bars.nth(i)).to_have_attribute("aria-valuetext", "100 percent, 30 of 30, Complete")
    expect(live).to_have_text(re.compile("All 2 tasks complete"))
    # Accessible names via Playwright's role queries.
    expect(app_page.get_by_role("progressbar", name="First batch")).to_have_count(1)


def test_several_jobs_at_once(app_page: Page, server: Server, sse_requests: list[str]) -> None:
    app_page.goto(server.url + "/")
    app_page.click("button[data-job=all]")
    sessions = app_page.locator(".pui-session")
    expect(sessions).to_have_count(3)
    expect(app_page.locator(".pui-status")).to_have_text(
        [re.compile("complete", re.I), re.compile("complete", re.I), re.compile("failed", re.I)],
        timeout=20_000,
    )
    assert len(sse_requests) == 3


def test_blocked_sse_falls_back_to_polling_until_finished(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    """A proxy that blocks event streams: after a few failed connections the
    component polls the fragment endpoint, reaches its final state, then stops."""
    app_page.route("**/events/", lambda route: route.abort())
    sid = start(app_page, server, "import")
    expect(component(app_page, sid).locator(".pui-status")).to_have_text(COMPLETE, timeout=60_000)
    polls = [url for url in sse_requests if "transport=poll" in url]
    assert sse_requests[0].endswith("/events/"), "the SSE connection was attempted first"
    assert polls, "the final state arrived by polling"
    bars = component(app_page, sid).locator('[role="progressbar"]')
    for n in range(bars.count()):
        expect(bars.nth(n)).to_have_attribute("aria-valuenow", "100")
    # More than two poll intervals pass in the page: no further poll.
    assert requests_while_time_passes(app_page, 4.5) == [], (
        "polling stops once the session has finished"
    )


def test_cancel_button_stops_the_job_and_the_stream(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    sid = start(app_page, server, "import")
    box = component(app_page, sid)
    expect(box.locator(".pui-badge")).to_have_text("In progress")
    title = box.locator(".pui-session__title").text_content()
    assert title
    button = box.locator(".pui-cancel__button")
    expect(button).to_be_visible()
    marker = "el => { el.dataset.kept = 'yes'; }"
    box.evaluate(marker)
    button.click()
    # htmx applied the answer's regions in place: the component (its heading,
    # its options) stays, and the Cancel button hides with a final summary.
    expect(box.locator(".pui-status")).to_have_text("Cancelled.")
    expect(box.locator(".pui-badge")).to_have_text("Cancelled")
    expect(button).to_be_hidden()
    assert box.get_attribute("data-kept") == "yes"
    expect(box.locator(".pui-session__title")).to_have_text(title)
    # Waited for, not read at once: a step that ended just before the click is
    # still "In progress" in the answer (its bar animates to 100 for
    # COMPLETING_DURATION: cancel leaves it alone), and the answer's own stream
    # brings it to "Complete" then. The others read "Cancelled" at once.
    expect(box.locator(".pui-bar__state", has_text="In progress")).to_have_count(0)
    states = box.locator(".pui-bar__state").all_text_contents()
    assert "Cancelled" in states, states
    # The job stopped at its next step: nothing moves any more, and a reload
    # shows the same final state without a stream.
    shown = box.locator('[role="progressbar"]').evaluate_all(
        "els => els.map(e => e.getAttribute('aria-valuenow'))"
    )
    time.sleep(1.5)
    app_page.reload()
    again = component(app_page, sid)
    expect(again.locator(".pui-badge")).to_have_text("Cancelled")
    assert (
        again.locator('[role="progressbar"]').evaluate_all(
            "els => els.map(e => e.getAttribute('aria-valuenow'))"
        )
        == shown
    )
    assert again.locator("[sse-connect], [hx-sse\\:connect]").count() == 0


def test_a_late_sse_extension_still_connects(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    """The extension script arriving late must not leave the component with
    neither a stream nor polling (htmx 4 used to start before its extension)."""

    def late(route: Any) -> None:
        time.sleep(1.5)
        route.continue_()

    app_page.route(re.compile(r".*/vendor/htmx-(ext-sse|hx-sse)-.*\.js$"), late)
    sid = start(app_page, server, "quick")
    app_page.reload()  # the component is in the page when the scripts load
    wait_finished(app_page, sid)
    assert sse_requests and all("/events/" in u for u in sse_requests), sse_requests


def test_a_silent_stream_falls_back_to_polling(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    """A stream that opens but never delivers anything (a buffering proxy): the
    watchdog switches to polling, which reaches the final state."""
    app_page.route("**/events/", lambda route: None)  # never answered
    sid = start(app_page, server, "quick")
    expect(component(app_page, sid).locator(".pui-status")).to_have_text(COMPLETE, timeout=40_000)
    assert any("transport=poll" in u for u in sse_requests)


def test_polling_stops_on_404_and_shows_the_expired_state(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    app_page.route("**/events/", lambda route: route.abort())
    app_page.route(
        "**/html/?transport=poll",
        lambda route: route.fulfill(status=404, body="No such progress session."),
    )
    sid = start(app_page, server, "import")
    box = component(app_page, sid)
    expect(box.locator(".pui-status")).to_have_text("This progress is no longer available.")
    assert len([u for u in sse_requests if "transport=poll" in u]) == 1
    assert requests_while_time_passes(app_page, 5) == []  # more than two poll intervals


def focused(page: Page, selector: str) -> bool:
    """Whether the element ``selector`` names has the page's focus."""
    script = "s => document.activeElement === document.querySelector(s)"
    return bool(page.evaluate(script, selector))


def test_a_polled_component_keeps_its_heading_and_the_focus_on_cancel(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    """Polled, the component shows what a streamed one does: its heading and its
    Cancel button stay (the polled form from the server has neither), and a
    keyboard user's focus on Cancel survives the polls that move the bar, so
    Enter then cancels."""
    app_page.route("**/events/", lambda route: route.abort())
    sid = start(app_page, server, "rows")  # about 6 s
    box = component(app_page, sid)
    let_polls_pass(app_page, 1)
    cancel = f'[data-progress-session="{sid}"] .pui-cancel__button'
    title = box.locator(".pui-session__title")
    expect(title).to_have_text("Import 600 rows")
    title.click()  # where sequential focus starts
    app_page.keyboard.press("Tab")
    assert focused(app_page, cancel)
    bar = box.locator('.pui-task [role="progressbar"]')
    shown = bar.get_attribute("aria-valuenow")
    let_polls_pass(app_page, 2)
    for _ in range(10):  # at least one of the polls moved the bar
        if bar.get_attribute("aria-valuenow") != shown:
            break
        let_polls_pass(app_page, 1)
    assert bar.get_attribute("aria-valuenow") != shown
    assert focused(app_page, cancel), app_page.evaluate("document.activeElement.outerHTML")
    expect(title).to_have_text("Import 600 rows")
    expect(box.locator(".pui-badge")).to_have_text("In progress")
    assert box.locator("[sse-connect], [hx-sse\\:connect]").count() == 0
    assert [u for u in sse_requests if "transport=poll" in u]
    app_page.keyboard.press("Enter")
    expect(box.locator(".pui-badge")).to_have_text("Cancelled")
    expect(box.locator(".pui-cancel__button")).to_be_hidden()
    expect(title).to_have_text("Import 600 rows")


def test_a_polled_components_buttons_keep_the_keyboard_focus(
    app_page: Page, server: Server, sse_requests: list[str]
) -> None:
    """The "Notify me when done" and Cancel buttons keep the focus across polls
    (each poll used to replace them). Every poll here answers the first one's (running)
    state, so the report cannot finish meanwhile."""
    app_page.route("**/events/", lambda route: route.abort())
    first: list[bytes] = []

    def pinned(route: Any) -> None:
        if not first:
            first.append(route.fetch().body())
        route.fulfill(status=200, body=first[0], content_type="text/html; charset=utf-8")

    app_page.route("**/html/?transport=poll", pinned)
    app_page.goto(server.url + "/report/")
    app_page.click("button[data-job=report]")
    box = app_page.locator(".pui-session")
    expect(box).to_have_count(1)
    let_polls_pass(app_page, 1)
    title = box.locator(".pui-session__title")
    expect(title).to_have_text("Sales report")
    title.click()  # where sequential focus starts
    for selector in (".pui-notify", ".pui-cancel__button"):
        app_page.keyboard.press("Tab")
        assert focused(app_page, selector), selector
        let_polls_pass(app_page, 2)
        assert focused(app_page, selector), app_page.evaluate("document.activeElement.outerHTML")
    expect(title).to_have_text("Sales report")
    expect(box.locator(".pui-badge")).to_have_text("In progress")


def test_htmx_loaded_twice_is_reported_in_the_console(app_page: Page, server: Server) -> None:
    errors: list[str] = []
    app_page.on("console", lambda message: errors.append(message.text))
    version = "2.0.11" if server.htmx == 2 else "4.0.1"

    def twice(route: Any) -> None:
        # The page as a site that also loads htmx itself would serve it.
        response = route.fetch()
        extra = f'<script src="/static/progress_ui/vendor/htmx-{version}.min.js"></script>'
        route.fulfill(response=response, body=response.text().replace("</head>", extra + "</head>"))

    app_page.route(server.url + "/", twice)
    with app_page.expect_console_message(lambda m: "htmx is loaded 2 times" in m.text):
        app_page.goto(server.url + "/")


def test_without_its_scripts_the_component_says_live_updates_are_unavailable(
    app_page: Page, server: Server
) -> None:
    sid = start(app_page, server, "import")
    expect(component(app_page, sid).locator(".pui-offline")).to_be_hidden()
    # Static files not served (uvicorn without a static handler, say).
    app_page.route(re.compile(r".*/static/progress_ui/.*\.js$"), lambda route: route.abort())
    app_page.goto(f"{server.url}/session/{sid}/")
    expect(component(app_page, sid).locator(".pui-offline")).to_be_visible()
    expect(component(app_page, sid).locator(".pui-offline")).to_contain_text(
        "Live updates are unavailable"
    )


def test_a_nested_weighted_job_shows_its_steps_and_finishes(app_page: Page, server: Server) -> None:
    sid = start(app_page, server, "nested")
    box = component(app_page, sid)
    files = box.locator('.pui-task[data-task="files"]')
    expect(files.locator(".pui-bar__share")).to_have_text("75% of the job")
    expect(files.locator(".pui-bar__step")).to_have_text(re.compile(r"Step [123] of 3: \w+"))
    wait_finished(app_page, sid)
    expect(files.locator(".pui-bar__state")).to_have_text("Complete")
    expect(box.locator('.pui-task [aria-valuenow="100"]')).to_have_count(2)


def test_a_counted_job_shows_its_rate_and_time_left(app_page: Page, server: Server) -> None:
    sid = start(app_page, server, "rows")
    timing = component(app_page, sid).locator('.pui-task[data-task="rows"] .pui-bar__timing')
    expect(timing).to_have_text(re.compile(r"about \d+ seconds? left · [\d.,]+/s"), timeout=15_000)
    wait_finished(app_page, sid)
    expect(timing).to_have_text(re.compile(r"took \d+ seconds?"))
