"""What the bars look like and tell assistive technology, in Chromium: colours
that follow the page's theme switch (the Django admin's ``html[data-theme]``,
Bootstrap's ``[data-bs-theme]``, Tailwind's ``.dark``, else the system's
preference), and bars that announce a number only when it is measured
(Playwright's accessibility snapshot).

These pages are built from the packaged stylesheet and the component's markup
(``page.set_content``): what they check does not depend on the server or on the
htmx version, so no server runs here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from progress_ui.render.components import render_bar, render_session
from tests.support.browser import LAUNCH_ARGS
from tests.unit.test_components import snapshot, task

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.urls("tests.unit.test_components")]

CSS = Path(__file__).resolve().parents[2] / "progress_ui/static/progress_ui/progress_ui.css"
LIGHT_RUNNING = "rgb(29, 95, 214)"  # --pui-running
DARK_RUNNING = "rgb(110, 168, 254)"
LIGHT_SURFACE = "rgb(255, 255, 255)"  # --pui-surface
DARK_SURFACE = "rgb(27, 36, 48)"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**LAUNCH_ARGS)  # type: ignore[arg-type]
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context()
    yield context.new_page()
    context.close()


def show(page: Page, body: str, html_attrs: str = "") -> None:
    # Reduced motion: no colour transition, so the colours read are the final ones.
    page.emulate_media(reduced_motion="reduce")
    page.set_content(f"<!doctype html><html {html_attrs}><head></head><body>{body}</body></html>")
    page.add_style_tag(path=str(CSS))


def colours(page: Page) -> tuple[str, str]:
    """(fill colour of the running bar, background of the component)."""
    found: Any = page.evaluate(
        """() => [
          getComputedStyle(document.querySelector('.pui-bar__fill')).backgroundColor,
          getComputedStyle(document.querySelector('.pui-session')).backgroundColor,
        ]"""
    )
    return found[0], found[1]


def component() -> str:
    return str(render_session(snapshot(one=task(percent=40))))


@pytest.mark.parametrize("system", ["light", "dark"])
@pytest.mark.parametrize(
    ("html_attrs", "wrapper", "theme"),
    [
        ('data-theme="dark"', "", "dark"),  # the Django admin
        ('data-theme="light"', "", "light"),
        ('data-theme="auto"', "", "system"),
        ('data-bs-theme="dark"', "", "dark"),  # Bootstrap 5.3, on the page
        ('data-bs-theme="light"', "", "light"),
        ("", '<div data-bs-theme="dark">{}</div>', "dark"),  # or on a part of it
        ("", '<div data-bs-theme="light">{}</div>', "light"),
        ('class="dark"', "", "dark"),  # Tailwind
        ('class="light"', "", "light"),
        ("", "", "system"),  # the page sets nothing
    ],
)
def test_bars_follow_the_pages_theme_switch(
    page: Page, system: str, html_attrs: str, wrapper: str, theme: str
) -> None:
    page.emulate_media(color_scheme=system)  # type: ignore[arg-type]
    show(page, (wrapper or "{}").format(component()), html_attrs)
    dark = (system if theme == "system" else theme) == "dark"
    assert colours(page) == (
        (DARK_RUNNING, DARK_SURFACE) if dark else (LIGHT_RUNNING, LIGHT_SURFACE)
    )


def test_a_page_can_set_its_own_colours_through_the_custom_properties(page: Page) -> None:
    show(page, f"<style>.pui-session {{ --pui-running: rgb(1, 2, 3); }}</style>{component()}")
    assert colours(page)[0] == "rgb(1, 2, 3)"


def test_the_pages_list_rules_stay_out_of_the_bars(page: Page) -> None:
    # The Django admin's base.css: square bullets on every list item.
    admin = "<style>ul > li { list-style-type: square; padding: 1px 0; }</style>"
    show(page, admin + component())
    found = page.evaluate(
        "(() => { const s = getComputedStyle(document.querySelector('.pui-task'));"
        " return [s.listStyleType, s.paddingTop]; })()"
    )
    assert found == ["none", "0px"]


# -- honest bars ------------------------------------------------------------------------------


def test_only_measured_bars_announce_a_number(page: Page) -> None:
    show(
        page,
        str(render_bar(name="Counted", percent=40, current=40, total=100))
        + str(render_bar(name="Estimated", percent=37, simulated=True))
        + str(render_bar(name="Unmeasured", percent=None)),
    )
    tree = page.locator("body").aria_snapshot()
    # A measured bar: its number. An estimate and an unmeasured bar: their state only.
    assert '- progressbar "Counted": "40"' in tree or '- progressbar "Counted"' in tree
    assert page.get_by_role("progressbar", name="Counted").get_attribute("aria-valuenow") == "40"
    for name in ("Estimated", "Unmeasured"):
        bar = page.get_by_role("progressbar", name=name)
        assert bar.get_attribute("aria-valuenow") is None
        assert bar.get_attribute("aria-valuetext") == "In progress"
        assert f'progressbar "{name}"' in tree
    assert "37" not in tree
    assert (
        page.get_by_role("progressbar", name="Counted").get_attribute("aria-valuetext")
        == "40 percent, 40 of 100, In progress"
    )
    # The unmeasured bar slides: no width of its own, no percent shown.
    unmeasured = page.locator(".pui-bar-standalone").nth(2)
    assert unmeasured.locator(".pui-bar__percent").inner_text() == ""
    assert unmeasured.locator(".pui-bar--indeterminate").count() == 1
