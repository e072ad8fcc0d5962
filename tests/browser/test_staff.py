"""The staff page in a real browser: an operator logs in to the Django admin,
follows "Progress sessions" to the staff page, sees a stranger's session run
live, and cancels it. Runs on uvicorn (ASGI) with htmx 2 and gunicorn (WSGI)
with htmx 4, on the demo (which mounts the admin).

The sessions are written by this process into the server's file cache (the
running one by a thread of this process, as a worker would): the server only
lists and shows them. With ``PROGRESS_SHOTS_DIR`` set, the staff page is saved
there as ``staff-view.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings
from playwright.sync_api import Browser, Page, expect

from progress_ui import ProgressSession, TaskCancelled
from tests.browser.test_components import (  # noqa: F401  (fixtures)
    app_page,
    browser_type_launch_args,
    chromium,
    samples,
    sse_requests,
)
from tests.support.browser import OUTPUT, Server
from tests.support.servers import run_server

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

MODES = [("asgi", 2), ("wsgi", 4)]
PASSWORD = "not-a-secret-9"

#: Run in the server's settings: its database, its users (one with the staff
#: permission, one owner), their primary keys printed as JSON.
MAKE_USERS = f"""
import json
from django.contrib.auth.models import Permission, User
operator = User.objects.create_user("operator", password={PASSWORD!r}, is_staff=True)
operator.user_permissions.add(Permission.objects.get(codename="manage_progress_sessions"))
alice = User.objects.create_user("alice.martin")
print(json.dumps({{"operator": operator.pk, "alice": alice.pk}}))
"""


@pytest.fixture(scope="module", params=MODES, ids=[f"{k}-htmx{v}" for k, v in MODES])
def site(request: pytest.FixtureRequest) -> Iterator[tuple[Server, dict[str, int], str]]:
    """The demo served by ``kind``, with a migrated database and its users."""
    kind, htmx = request.param
    folder = tempfile.mkdtemp(prefix="progress-browser-staff-")
    env = {
        "DEMO_HTMX_VERSION": str(htmx),
        "PROGRESS_BROWSER_CACHE_DIR": folder,
        "PROGRESS_BROWSER_DB": str(Path(folder) / "db.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "tests.support.settings_browser",
    }
    full_env = {**os.environ, **env}
    manage = [sys.executable, "-m", "django"]
    try:
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=full_env, check=True)
        made = subprocess.run(
            [*manage, "shell", "-c", MAKE_USERS],
            env=full_env,
            check=True,
            capture_output=True,
            text=True,
        )
        users = json.loads(made.stdout.strip().splitlines()[-1])
        with run_server(
            kind,
            settings_module="tests.support.settings_browser",
            app=f"demo.{kind}:application",
            env=env,
        ) as url:
            yield Server(url, kind, htmx), users, folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def server_cache(site: tuple[Server, dict[str, int], str]) -> Iterator[None]:
    """This process writes progress where the server reads it."""
    cache = {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": site[2],
        "OPTIONS": {"MAX_ENTRIES": 10000},
    }
    with override_settings(
        CACHES={"default": cache}, PROGRESS_UI={"CACHE_ALIAS": "default", "COMPLETING_DURATION": 0}
    ):
        yield


def run_until_cancelled(session: ProgressSession, done: threading.Event) -> None:
    """A job of a stranger (alice), moving slowly until someone cancels it."""
    try:
        session.start("import")
        for _ in session.iterate("import", range(3000), message="Reading products.csv"):
            if done.wait(0.05):
                return
    except TaskCancelled:
        pass
    finally:
        done.set()


def make_sessions(users: dict[str, int]) -> tuple[ProgressSession, threading.Event]:
    report = ProgressSession.create({"report": "Monthly report"}, owner=f"user:{users['alice']}")
    report.complete("report")
    mail = ProgressSession.create(
        {"mail": "Send the newsletter", "export": "Export orders"}, owner="browser:" + "9" * 64
    )
    mail.complete("export")
    mail.error("mail", "The mail server refused the connection.")
    running = ProgressSession.create(
        {"import": "Import products", "prices": "Update prices"}, owner=f"user:{users['alice']}"
    )
    done = threading.Event()
    threading.Thread(target=run_until_cancelled, args=(running, done), daemon=True).start()
    return running, done


def log_in(page: Page, server: Server) -> None:
    page.goto(server.url + "/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("operator")


def test_an_operator_watches_a_strangers_session_and_cancels_it(
    app_page: Page,  # noqa: F811  (the fixture, imported above)
    chromium: Browser,  # noqa: F811
    site: tuple[Server, dict[str, int], str],
    server_cache: None,
) -> None:
    server, users, _ = site
    page = app_page
    running, done = make_sessions(users)
    try:
        log_in(page, server)
        # The admin index links to the staff page.
        page.get_by_role("link", name="Progress sessions").click()
        expect(page).to_have_url(server.url + "/progress/staff/")
        rows = page.locator(".pui-staff__row")
        expect(rows).to_have_count(3)
        first = rows.first
        assert first.get_attribute("data-progress-session") == running.session_id
        expect(first).to_contain_text("alice.martin")
        expect(first).to_contain_text("Import products, Update prices")
        expect(rows.nth(1)).to_contain_text("Anonymous visitor")
        expect(rows.nth(1)).to_contain_text("The mail server refused the connection.")
        expect(rows.nth(2)).to_contain_text("Complete")

        # Open the running one in its row: the live component, with Cancel.
        first.get_by_role("link", name="Open").click()
        opened = page.locator(
            f'#pui-staff-detail-1 .pui-session[data-progress-session="{running.session_id}"]'
        )
        expect(opened).to_be_visible()
        region = f"progress-{running.session_id}-task:import"
        # Live: the import bar moves while the page stays as it is.
        page.wait_for_function(
            "region => (window.__samples[region] || []).filter(v => v > 0).length >= 3",
            arg=region,
            timeout=30_000,
        )
        moved = samples(page)[region]
        assert moved == sorted(moved), moved
        shots = os.environ.get("PROGRESS_SHOTS_DIR")
        if shots and (server.kind, server.htmx) == MODES[0]:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / "staff-view.png"), full_page=True)
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"staff-view-{server.kind}-htmx{server.htmx}.png"))

        # The rows are live too: the running row's percent moves in place (the
        # page polls its ?live=1 answer), and the opened component stays.
        percent = page.locator(f"#pui-staff-{running.session_id}-percent")
        shown = percent.text_content()
        expect(percent).not_to_have_text(shown or "", timeout=30_000)
        expect(opened).to_be_visible()

        opened.get_by_role("button", name="Cancel").click()
        expect(opened.locator(".pui-status")).to_have_text("Cancelled.", timeout=20_000)
        assert done.wait(20), "the job did not stop"
        status = page.locator(f"#pui-staff-{running.session_id}-status")
        expect(status).to_contain_text("Cancelled", timeout=20_000)
        # Every row has settled: the live answer emptied the poller.
        expect(page.locator("#pui-staff-poller [hx-get]")).to_have_count(0)
        assert running.to_dict()["status"] == "cancelled"
        assert running.to_dict()["tasks"]["import"]["percent"] > 0

        # Someone without the permission gets the 404 of a missing session.
        stranger = chromium.new_context()
        try:
            answer = stranger.new_page().goto(server.url + "/progress/staff/")
            assert answer is not None and answer.status == 404
            assert answer.text() == "No such progress session."
        finally:
            stranger.close()
    finally:
        done.set()
