"""A client beyond its share of stream places (``MAX_STREAMS_PER_CLIENT``) is
answered 429, and in a real browser (htmx 2 and 4) its component polls and
finishes exactly as after a 503: ``progress_ui.js`` treats any stream that
cannot connect alike (issue 21 A)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_components import (  # noqa: F401 (fixtures, used by name)
    app_page,
    browser_type_launch_args,
    chromium,
    component,
    sse_requests,
    start,
    wait_finished,
)
from tests.browser.test_stream_limits import HTMX, demo_server, polls, stream_statuses
from tests.support.browser import Server, watch

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module", params=HTMX, ids=[f"wsgi-htmx{v}" for v in HTMX])
def one_per_client(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server that lets each client hold one stream place."""
    yield from demo_server(request.param, {"MAX_STREAMS": 8, "MAX_STREAMS_PER_CLIENT": 1})


def test_a_component_beyond_its_clients_share_polls_and_finishes(
    app_page: Page,  # noqa: F811
    one_per_client: Server,
    sse_requests: list[str],  # noqa: F811
) -> None:
    first = stream_statuses(app_page)
    sid = start(app_page, one_per_client, "rows")  # this tab's stream: the client's place
    expect(component(app_page, sid)).to_have_attribute("data-pui-received", "1")

    other_requests: list[str] = []
    other = watch(app_page.context.new_page(), other_requests)
    second = stream_statuses(other)
    other.goto(f"{one_per_client.url}/session/{sid}/")
    wait_finished(other, sid)
    wait_finished(app_page, sid)

    refused = len(second)
    assert second == [429] * refused and 1 <= refused <= (2 if one_per_client.htmx == 2 else 1)
    assert len(polls(other_requests)) == len(other_requests) - refused > 0
    bars = component(other, sid).locator('.pui-task [role="progressbar"]')
    expect(bars.first).to_have_attribute("aria-valuenow", "100")
    assert first == [200]
