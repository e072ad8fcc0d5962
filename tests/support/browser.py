"""Helpers for the browser tests: the server modes, a recorder of bar values
injected into pages, SSE request counting, and "nothing happens" checks on
Playwright's clock (no sleeping)."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, Request
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
#: How the browser tests start Debian's Chromium (Playwright's own download fails here).
LAUNCH_ARGS = {
    "executable_path": os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
    "args": [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ],
}
#: (server kind, htmx major version): every scenario runs in each.
MODES = [("wsgi", 2), ("wsgi", 4), ("asgi", 2), ("asgi", 4)]

#: Records every bar's aria-valuenow whenever the DOM changes, keyed by region id.
RECORDER = """
window.__samples = {};
const record = () => {
  for (const li of document.querySelectorAll('.pui-task')) {
    const bar = li.querySelector('[role=progressbar]');
    if (!bar) continue;
    const list = (window.__samples[li.id] ||= []);
    const value = Number(bar.getAttribute('aria-valuenow'));
    if (list[list.length - 1] !== value) list.push(value);
  }
};
new MutationObserver(record).observe(document, {
  subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'],
});
"""


#: Counts, inside the page, the stream and poll requests its scripts start (fetch,
#: XMLHttpRequest, EventSource), so a check right after the clock has run needs
#: no wait for Playwright's request events; keeps each EventSource to see it closed.
NETWORK = """
window.__net = [];
window.__sources = [];
const interesting = (url) => /\\/events\\/|transport=poll/.test(String(url));
const realFetch = window.fetch;
window.fetch = function (input, init) {
  const url = typeof input === 'string' ? input : (input && input.url) || String(input);
  if (interesting(url)) window.__net.push(String(url));
  return realFetch.apply(this, arguments);
};
const realOpen = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (method, url) {
  if (interesting(url)) window.__net.push(String(url));
  return realOpen.apply(this, arguments);
};
const RealEventSource = window.EventSource;
window.EventSource = class extends RealEventSource {
  constructor(url, options) {
    super(url, options);
    if (interesting(url)) window.__net.push(String(url));
    window.__sources.push(this);
  }
};
"""


def requests_while_time_passes(page: Page, seconds: float) -> list[str]:
    """Let ``seconds`` of page time pass on Playwright's clock, at once, firing
    every timer due (polls, reconnect delays, watchdogs); return the stream and
    poll requests the page's scripts started meanwhile. Time then flows again."""
    start = int(page.evaluate("window.__net.length"))
    # pause_at takes seconds since the epoch; a little ahead, as page time moves
    # while the call travels.
    page.clock.pause_at(float(page.evaluate("Date.now()")) / 1000 + 0.25)
    page.clock.run_for(int(seconds * 1000))
    started: list[str] = page.evaluate(f"window.__net.slice({start})")
    page.clock.resume()
    return started


def polls_started(page: Page) -> int:
    """How many polls of the fallback the page's scripts have started."""
    return int(page.evaluate("window.__net.filter(u => /transport=poll/.test(u)).length"))


def let_polls_pass(page: Page, count: int, *, timeout: float = 30) -> None:
    """Return once ``count`` more poll answers have been applied, with the page's
    clock run ahead to each poll's timer (no waiting 2 s each). Applied, not only
    answered: a component sets its next poll's timer once it has applied an
    answer, so the poll after the last one counted must have started. Polls the
    page started before this call count from the one in flight, so ``count + 1``
    more must start."""
    target = polls_started(page) + count + 1
    deadline = time.monotonic() + timeout
    while polls_started(page) < target:
        assert time.monotonic() < deadline, f"fewer than {count} polls in {timeout} s"
        # Fires the next poll's timer if it is set already; if the answer is still
        # on its way, its timer comes 2 s of (flowing) page time after it.
        requests_while_time_passes(page, 2.1)
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_function(
                f"window.__net.filter(u => /transport=poll/.test(u)).length >= {target}",
                timeout=2500,
            )


def open_event_sources(page: Page) -> int:
    """How many EventSources the page still holds open or reconnecting (a closed
    one never reconnects by itself)."""
    return int(page.evaluate("window.__sources.filter(s => s.readyState !== 2).length"))


@dataclass
class Server:
    url: str
    kind: str
    htmx: int

    @property
    def reconnect_wait(self) -> float:
        """Long enough for the client's reconnect delay to pass (htmx 2: 3 s,
        htmx 4: ~0.5 s, or our retry hint of 2 s)."""
        return 3.5 if self.htmx == 2 else 2.5


def watch(page: Page, sse_requests: list[str]) -> Page:
    """Record bar values and stream requests in ``page``; its context's clock is
    installed (time flows as usual until a test pauses it)."""
    page.add_init_script(RECORDER)
    page.add_init_script(NETWORK)

    def on_request(req: Request) -> None:
        # SSE connections, and polls of the fallback (which a healthy stream never
        # triggers; the tests assert the exact list).
        if "/events/" in req.url or "transport=poll" in req.url:
            sse_requests.append(req.url)

    page.on("request", on_request)
    return page
