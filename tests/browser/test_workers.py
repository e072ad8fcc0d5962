"""The demo with its jobs in a real Django Tasks worker (db_worker), in a real
browser: a SIGKILLed worker turns the bar to an error, and the stream ends."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_components import (  # noqa: F401  (fixtures)
    app_page,
    browser_type_launch_args,
    chromium,
    component,
    sse_requests,
    start,
)
from tests.support.browser import Server, requests_while_time_passes
from tests.support.servers import run_server
from tests.support.workers import WorkerProcess, db_worker_command, running_process

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow, pytest.mark.worker]

#: Fast liveness, so a lost worker shows within a few seconds.
LIVENESS = {"WORKER_BEAT_INTERVAL": 0.5, "WORKER_STALE_TIMEOUT": 1.0}
MODES = [("asgi", 2), ("wsgi", 4)]


@pytest.fixture(scope="module", params=MODES, ids=[f"{k}-htmx{v}" for k, v in MODES])
def deployment(request: pytest.FixtureRequest) -> Iterator[tuple[Server, WorkerProcess, str]]:
    """A server and a db_worker sharing one SQLite file and one file cache."""
    kind, htmx = request.param
    folder = tempfile.mkdtemp(prefix="progress-browser-workers-")
    env = {
        "DEMO_HTMX_VERSION": str(htmx),
        "PROGRESS_BROWSER_CACHE_DIR": folder,
        "PROGRESS_BROWSER_DB": str(Path(folder) / "db.sqlite3"),
        "DEMO_SPEED": "1",
        "DEMO_RUNNER": "django_tasks",
        "PROGRESS_TEST_UI": json.dumps(LIVENESS),
        "DJANGO_SETTINGS_MODULE": "tests.support.settings_browser",
    }
    full_env = {**os.environ, **env}
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        env=full_env,
        check=True,
        timeout=120,
    )
    try:
        with (
            running_process(db_worker_command(), env=env, ready="Starting worker") as worker,
            run_server(
                kind,
                settings_module="tests.support.settings_browser",
                app=f"demo.{kind}:application",
                env=env,
            ) as url,
        ):  # fmt: skip
            yield Server(url, kind, htmx), worker, env["PROGRESS_BROWSER_DB"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_page_says_where_jobs_run_and_the_worker_runs_them(
    app_page: Page, deployment: tuple[Server, WorkerProcess, str]
) -> None:
    server, _, database = deployment
    app_page.goto(server.url + "/")
    expect(app_page.locator("[data-runner]")).to_contain_text("Django Tasks worker")
    sid = start(app_page, server, "quick")
    expect(component(app_page, sid).locator(".pui-status")).to_have_text(
        re.compile("complete", re.I), timeout=30_000
    )
    # The worker recorded the job's result in the queue's table.
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT status FROM django_tasks_database_dbtaskresult WHERE task_path = ?",
            ["progress_ui.contrib.django_tasks.run_progress_job"],
        ).fetchall()
    assert rows == [("SUCCESSFUL",)]


def test_a_killed_worker_turns_the_bar_to_an_error(
    app_page: Page, deployment: tuple[Server, WorkerProcess, str], sse_requests: list[str]
) -> None:
    server, worker, _ = deployment
    sid = start(app_page, server, "import")
    box = component(app_page, sid)
    # The worker is at it: the second step has counts.
    expect(box.locator(".pui-bar__count").first).to_have_text(re.compile(r"\d+ of 400"))
    killed_at = time.monotonic()
    os.killpg(worker.pid, signal.SIGKILL)
    # The message shows once, under the failed bar; the status line names the task.
    expect(box.locator(".pui-bar__message--error")).to_have_text(
        "The worker stopped responding.", timeout=30_000
    )
    shown_after = time.monotonic() - killed_at
    expect(box.locator(".pui-status")).to_contain_text("failed")
    expect(box.locator(".pui-badge")).to_have_text("Failed")
    expect(box.locator(".pui-task .pui-bar--error")).to_have_count(1)
    # Stale timeout 1 s, confirmed over 1.5 beats of 0.5 s: a few seconds at most.
    assert shown_after < 10, shown_after
    assert requests_while_time_passes(app_page, server.reconnect_wait) == []
    assert sse_requests == [f"{server.url}/progress/{sid}/events/"]
