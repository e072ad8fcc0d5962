"""The README's "Getting started in a fresh project", followed literally.

The snippets are read from README.md at test time (each ``<!-- readme-project: PATH
MODE -->`` marker and the fenced block after it), applied to a project made by
``django-admin startproject mysite`` + ``startapp imports`` in a temp dir, checked,
migrated and served by uvicorn; Chromium then clicks the button and watches the
bar finish over one SSE connection.

The only change made to the README's text: the Redis URL in the settings block
(``redis://127.0.0.1:6379/0``) becomes the test suite's ``REDIS_URL`` (default
``redis://127.0.0.1:6379/15``), so the test never touches Redis database 0.

``progress_ui`` is imported as a user installs it, from the wheel's layout: the
repository keeps the app's templates and static files at the top level and the
wheel moves them into the package (``force-include`` in pyproject.toml). The
editable install imports the package from the repository, where Django would find
neither, so the project's processes get a symlinked copy of the wheel's layout
(the current sources) first on ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Request, Response, expect, sync_playwright

from tests.browser.helpers import LAUNCH_ARGS
from tests.conftest import require_redis
from tests.servers import _answers, free_port
from tests.workers import WorkerProcess, stop_process, wait_ready

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTION = "## Getting started in a fresh project"
#: The files the section must give, each with a marker.
REQUIRED = [
    "mysite/settings.py",
    "imports/jobs.py",
    "imports/views.py",
    "imports/templates/imports/import.html",
    "mysite/urls.py",
    "mysite/asgi.py",
]
#: The shell steps the section must show (the test runs their equivalents).
SHELL_STEPS = [
    "django-admin startproject mysite",
    "cd mysite",
    "python manage.py startapp imports",
    "python manage.py migrate",
    "uvicorn mysite.asgi:application",
]
README_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Seconds for one management command (Django start-up on 2 shared, noisy cores).
COMMAND_TIMEOUT = 120
COMPLETE = re.compile(r"complete", re.I)
#: Longer than htmx 2's SSE reconnect delay (3 s): a reopened stream would show.
RECONNECT_WAIT = 3.5

ANY_MARKER = re.compile(r"<!--\s*readme-project:(.*?)-->")
MARKER_WITH_BLOCK = re.compile(
    r"<!-- readme-project: (?P<path>\S+) (?P<mode>append|create) -->[ \t]*\n"
    r"[ \t]*\n?"  # at most one blank line before the fence
    r"```[\w-]*\n(?P<body>.*?)\n```[ \t]*(?:\n|$)",
    re.S,
)


@dataclass(frozen=True)
class Block:
    path: str
    mode: str
    body: str


def readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.find(f"\n{SECTION}\n")
    if start < 0:
        pytest.fail(f"README.md has no section {SECTION!r}", pytrace=False)
    end = text.find("\n## ", start + len(SECTION) + 1)
    return text[start : end if end >= 0 else len(text)]


def readme_blocks() -> list[Block]:
    """Every marker of the section and the fenced block right after it, in order."""
    section = readme_section()
    markers = ANY_MARKER.findall(section)
    blocks = [Block(m["path"], m["mode"], m["body"]) for m in MARKER_WITH_BLOCK.finditer(section)]
    if len(blocks) != len(markers):
        parsed = {f" {b.path} {b.mode} " for b in blocks}
        bad = [m.strip() for m in markers if m not in parsed]
        pytest.fail(
            "README.md: these readme-project markers are malformed or not followed by a "
            f"fenced code block (expected '<!-- readme-project: PATH append|create -->'): {bad}",
            pytrace=False,
        )
    missing = [p for p in REQUIRED if p not in {b.path for b in blocks}]
    if missing:
        pytest.fail(
            f"README.md section {SECTION!r} has no '<!-- readme-project: PATH MODE -->' "
            f"block for: {missing} (found: {[b.path for b in blocks]})",
            pytrace=False,
        )
    return blocks


def wheel_layout(site: Path) -> Path:
    """``site/progress_ui`` laid out as the wheel installs it: the package's files
    plus pyproject's ``force-include`` entries, all symlinks to the sources."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    force_include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    package = site / "progress_ui"
    package.mkdir(parents=True)
    for entry in (ROOT / "progress_ui").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for source, target in force_include.items():
        (site / target).parent.mkdir(parents=True, exist_ok=True)
        (site / target).symlink_to(ROOT / source)
    return site


def child_env(site: Path) -> dict[str, str]:
    """This environment without the test suite's Django settings and async-unsafe
    switch, with the wheel's layout of ``progress_ui`` (``site``) as the path: the
    project runs as a newcomer would run it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", "PYTHONPATH")
    }
    env["PYTHONPATH"] = str(site)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class Project:
    root: Path  # the outer mysite/, where manage.py is
    site: Path  # the wheel's layout of progress_ui

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return run(args, self.root, self.site)

    def run_ok(self, args: list[str]) -> str:
        return run_ok(args, self.root, self.site)


def run(args: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=child_env(site),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def run_ok(args: list[str], cwd: Path, site: Path) -> str:
    result = run(args, cwd, site)
    assert result.returncode == 0, (
        f"`python {' '.join(args)}` exited with {result.returncode}:\n"
        f"{result.stdout}\n{result.stderr}"
    )
    return result.stdout + result.stderr


def apply_block(project: Path, block: Block) -> None:
    body = block.body
    if block.path == "mysite/settings.py":
        # The one edit beyond the README's text: the suite's Redis database, not db 0.
        assert README_REDIS_URL in body, (
            f"the README's settings block no longer uses {README_REDIS_URL}; update this test"
        )
        body = body.replace(README_REDIS_URL, settings.REDIS_URL)
    target = project / block.path
    if block.mode == "append":
        assert target.is_file(), (
            f"README appends to {block.path}, which startproject/startapp did not create"
        )
        existing = target.read_text(encoding="utf-8")
        target.write_text(existing.rstrip("\n") + "\n\n" + body + "\n", encoding="utf-8")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def blocks() -> list[Block]:
    return readme_blocks()


@pytest.fixture(scope="module")
def project(blocks: list[Block]) -> Iterator[Project]:
    """``mysite`` made from the README's steps (before ``check`` and ``migrate``)."""
    require_redis()
    tmp = Path(tempfile.mkdtemp(prefix="readme-project-"))
    try:
        site = wheel_layout(tmp / "site")
        work = tmp / "work"
        work.mkdir()
        run_ok(["-m", "django", "startproject", "mysite"], work, site)
        project = Project(work / "mysite", site)
        found = project.run_ok(["-c", "import progress_ui; print(progress_ui.__file__)"])
        assert found.strip() == str(site / "progress_ui" / "__init__.py"), found
        project.run_ok(["manage.py", "startapp", "imports"])
        for block in blocks:
            apply_block(project.root, block)
        yield project
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def migrated(project: Project) -> Project:
    project.run_ok(["manage.py", "migrate", "--no-input"])
    return project


@contextlib.contextmanager
def uvicorn(project: Project, port: int) -> Iterator[WorkerProcess]:
    """``uvicorn mysite.asgi:application`` in the project dir, as the README runs it;
    ready once it answers HTTP; stopped by PID (its process group) at the end."""
    argv = [sys.executable, "-m", "uvicorn", "mysite.asgi:application", "--port", str(port)]
    log_path = Path(tempfile.mkdtemp(prefix="readme-uvicorn-")) / "output.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=project.root,  # tests.workers.start_process runs in the repo root
            env=child_env(project.site),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(argv, proc, log_path)
    try:
        wait_ready(worker, lambda w: _answers(port), timeout=60)
        yield worker
    except BaseException:
        sys.stderr.write(f"--- uvicorn output (pid {worker.pid}) ---\n{worker.output()}\n")
        raise
    finally:
        stop_process(worker)
        shutil.rmtree(log_path.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def server(migrated: Project) -> Iterator[str]:
    port = free_port()
    with uvicorn(migrated, port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser_type_launch_args() -> dict[str, Any]:
    return dict(LAUNCH_ARGS)


@pytest.fixture(scope="module")
def chromium(browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    """Chromium for this module only (see tests/test_browser.py: a session-scoped
    sync Playwright would break the asyncio tests that run after it)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**browser_type_launch_args)
        yield browser
        browser.close()


# -- tests ---------------------------------------------------------------------


def test_readme_gives_the_steps_and_blocks(blocks: list[Block]) -> None:
    section = readme_section()
    missing = [step for step in SHELL_STEPS if step not in section]
    assert not missing, f"README.md section {SECTION!r} lacks the shell steps {missing}"
    paths = [b.path for b in blocks]
    assert len(paths) == len(set(paths)), f"a file is given twice: {paths}"
    for block in blocks:
        assert block.body.strip(), f"empty block for {block.path}"


def test_check_reports_nothing(project: Project) -> None:
    result = project.run(["manage.py", "check", "--fail-level", "WARNING"])
    assert result.returncode == 0, (
        f"`manage.py check --fail-level WARNING` in the README's project exited with "
        f"{result.returncode}:\n{result.stdout}\n{result.stderr}"
    )


def test_button_starts_a_job_and_the_bar_finishes(chromium: Browser, server: str) -> None:
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        sse_requests: list[str] = []
        css: list[tuple[str, int]] = []

        def on_request(req: Request) -> None:
            if "/events/" in req.url or "transport=poll" in req.url:
                sse_requests.append(req.url)

        def on_response(resp: Response) -> None:
            if resp.url.split("?")[0].endswith("/progress_ui.css"):
                css.append((resp.url, resp.status))

        page.on("request", on_request)
        page.on("response", on_response)

        response = page.goto(f"{server}/import/")
        assert response is not None and response.status == 200, response
        button = page.get_by_role("button", name="Import products")
        expect(button).to_be_visible()
        assert page.locator(".pui-session, .pui-status").count() == 0, "a component before the POST"

        # The stylesheet the page links to was served (by ASGIStaticFilesHandler).
        expect(page.locator('link[rel="stylesheet"][href*="progress_ui.css"]')).to_have_count(1)
        assert css, "progress_ui.css was never requested"
        assert all(status == 200 for _, status in css), css

        button.click()
        status = page.locator(".pui-status")
        expect(status).to_have_text(COMPLETE, timeout=30_000)
        sid = page.locator(".pui-session").first.get_attribute("data-progress-session")
        assert sid, "the component has no session id"
        bars = page.locator('.pui-task [role="progressbar"]')
        expect(bars).to_have_count(1)
        expect(bars).to_have_attribute("aria-valuenow", "100")

        # One stream, closed by the done event and never reopened.
        time.sleep(RECONNECT_WAIT)
        assert sse_requests == [f"{server}/progress/{sid}/events/"], sse_requests
    finally:
        context.close()
