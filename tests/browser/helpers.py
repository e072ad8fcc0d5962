"""Helpers for ``tests/test_browser.py``: the server modes, a recorder of bar
values injected into pages, and SSE request counting."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, Request

ROOT = Path(__file__).resolve().parent.parent.parent
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
    page.add_init_script(RECORDER)

    def on_request(req: Request) -> None:
        # SSE connections, and polls of the fallback (which a healthy stream never
        # triggers; the tests assert the exact list).
        if "/events/" in req.url or "transport=poll" in req.url:
            sse_requests.append(req.url)

    page.on("request", on_request)
    return page
