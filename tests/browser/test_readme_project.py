"""The tutorial (docs/tutorial.rst), followed literally.

The project is built from the page's labelled code blocks: every
``.. code-block::`` there has a ``:caption:``, either ``PATH (create)`` /
``PATH (append)`` (a file of the project) or ``Terminal`` (commands). The file
blocks are applied to a project made by ``django-admin startproject mysite`` +
``startapp imports`` in a temp dir, which is then checked, migrated and served by
uvicorn; Chromium clicks the button and watches the bar finish over one SSE
connection.

The only change made to the page's text: the Redis URL in the settings block
(``redis://127.0.0.1:6379/0``) becomes the test suite's ``REDIS_URL`` (default
``redis://127.0.0.1:6379/15``), so the test never touches Redis database 0.

``progress_ui`` is imported as a user installs it: the package directory (with
its templates, static files and catalogues inside) is symlinked into a fresh
directory put first on the project's ``PYTHONPATH``, so the project's processes
import these sources, not whatever editable install the virtualenv has.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Request, Response, expect, sync_playwright

from tests.conftest import require_redis
from tests.support.browser import LAUNCH_ARGS
from tests.support.servers import _answers, free_port
from tests.support.workers import WorkerProcess, stop_process, wait_ready

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.rst"
#: The files the tutorial must give, each in a labelled block.
REQUIRED = [
    "mysite/settings.py",
    "imports/jobs.py",
    "imports/views.py",
    "imports/templates/imports/import.html",
    "mysite/urls.py",
    "mysite/asgi.py",
]
#: The shell steps the tutorial must show (the test runs their equivalents).
SHELL_STEPS = [
    "redis-cli ping",
    "django-admin startproject mysite",
    "cd mysite",
    "python manage.py startapp imports",
    "python manage.py migrate",
    "uvicorn mysite.asgi:application",
]
TUTORIAL_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Seconds for one management command (Django start-up on 2 shared, noisy cores).
COMMAND_TIMEOUT = 120
COMPLETE = re.compile(r"complete", re.I)
#: Longer than htmx 2's SSE reconnect delay (3 s): a reopened stream would show.
RECONNECT_WAIT = 3.5

#: A code block's head: the directive, then its options (indented ``:name: value`` lines).
CODE_BLOCK = re.compile(
    r"^\.\. code-block::[ \t]*(?P<language>\S*)[ \t]*\n(?P<options>(?:[ \t]+:[\w-]+:.*\n)*)",
    re.M,
)
FILE_CAPTION = re.compile(r"(?P<path>[\w./-]+) \((?P<mode>append|create)\)")
SHELL_CAPTION = "Terminal"


@dataclass(frozen=True)
class Block:
    path: str
    mode: str
    body: str


@dataclass(frozen=True)
class CodeBlock:
    language: str
    caption: str | None
    body: str
    line: int


def code_blocks(text: str) -> list[CodeBlock]:
    """Every ``.. code-block::`` of an rst page: its language, ``:caption:`` and body
    (the indented lines after the options and one blank line, dedented)."""
    lines = text.splitlines()
    found = []
    for match in CODE_BLOCK.finditer(text):
        options = dict(
            re.match(r"\s*:([\w-]+):\s*(.*)", line).groups()  # type: ignore[union-attr]
            for line in match["options"].splitlines()
        )
        first = text.count("\n", 0, match.end())  # index of the line after the options
        body: list[str] = []
        for line in lines[first:]:
            if line.strip() and not line.startswith((" ", "\t")):
                break
            body.append(line)
        found.append(
            CodeBlock(
                language=match["language"],
                caption=options.get("caption"),
                body=textwrap.dedent("\n".join(body)).strip("\n"),
                line=text.count("\n", 0, match.start()) + 1,
            )
        )
    return found


def tutorial_text() -> str:
    if not TUTORIAL.is_file():
        pytest.fail(f"{TUTORIAL} is missing", pytrace=False)
    return TUTORIAL.read_text(encoding="utf-8")


def tutorial_blocks() -> list[Block]:
    """The tutorial's file blocks, in order; every code block must be labelled."""
    blocks, unlabelled = [], []
    for block in code_blocks(tutorial_text()):
        caption = block.caption or ""
        match = FILE_CAPTION.fullmatch(caption)
        if match:
            blocks.append(Block(match["path"], match["mode"], block.body))
        elif caption != SHELL_CAPTION:
            unlabelled.append(f"line {block.line}: {caption!r}")
    if unlabelled:
        pytest.fail(
            f"{TUTORIAL.name}: these code blocks lack a ':caption: PATH (create|append)' "
            f"or ':caption: {SHELL_CAPTION}': {unlabelled}",
            pytrace=False,
        )
    missing = [p for p in REQUIRED if p not in {b.path for b in blocks}]
    if missing:
        pytest.fail(
            f"{TUTORIAL.name} has no labelled block for: {missing} "
            f"(found: {[b.path for b in blocks]})",
            pytrace=False,
        )
    return blocks


def test_code_blocks_parser_reads_captions_and_bodies() -> None:
    page = (
        "Intro\n\n.. code-block:: python\n   :caption: app/x.py (create)\n\n"
        "   def f():\n       return 1\n\n   f()\n\nAfter.\n\n"
        ".. code-block:: console\n   :caption: Terminal\n   :emphasize-lines: 1\n\n   $ ls\n"
    )
    assert code_blocks(page) == [
        CodeBlock("python", "app/x.py (create)", "def f():\n    return 1\n\nf()", 3),
        CodeBlock("console", "Terminal", "$ ls", 13),
    ]


def package_site(site: Path) -> Path:
    """``site/progress_ui``: a symlink to these sources, laid out as the wheel
    installs them (templates, static files and catalogues are inside the package)."""
    site.mkdir(parents=True)
    (site / "progress_ui").symlink_to(ROOT / "progress_ui")
    return site


def child_env(site: Path) -> dict[str, str]:
    """This environment without the test suite's Django settings and async-unsafe
    switch, with ``site`` (these sources of ``progress_ui``) as the path: the
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
    site: Path  # the directory that holds progress_ui

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
        # The one edit beyond the tutorial's text: the suite's Redis database, not db 0.
        assert TUTORIAL_REDIS_URL in body, (
            f"the tutorial's settings block no longer uses {TUTORIAL_REDIS_URL}; update this test"
        )
        body = body.replace(TUTORIAL_REDIS_URL, settings.REDIS_URL)
    target = project / block.path
    if block.mode == "append":
        assert target.is_file(), (
            f"the tutorial appends to {block.path}, which startproject/startapp did not create"
        )
        existing = target.read_text(encoding="utf-8")
        target.write_text(existing.rstrip("\n") + "\n\n" + body + "\n", encoding="utf-8")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def blocks() -> list[Block]:
    return tutorial_blocks()


@pytest.fixture(scope="module")
def project(blocks: list[Block]) -> Iterator[Project]:
    """``mysite`` made from the tutorial's steps (before ``check`` and ``migrate``)."""
    require_redis()
    tmp = Path(tempfile.mkdtemp(prefix="tutorial-project-"))
    try:
        site = package_site(tmp / "site")
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
    """``uvicorn mysite.asgi:application`` in the project dir, as the tutorial runs it;
    ready once it answers HTTP; stopped by PID (its process group) at the end."""
    argv = [sys.executable, "-m", "uvicorn", "mysite.asgi:application", "--port", str(port)]
    log_path = Path(tempfile.mkdtemp(prefix="tutorial-uvicorn-")) / "output.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=project.root,  # tests.support.workers.start_process runs in the repo root
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
    """Chromium for this module only (see tests/browser/test_components.py: a session-scoped
    sync Playwright would break the asyncio tests that run after it)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**browser_type_launch_args)
        yield browser
        browser.close()


# -- tests ---------------------------------------------------------------------


def test_tutorial_gives_the_steps_and_blocks(blocks: list[Block]) -> None:
    text = tutorial_text()
    missing = [step for step in SHELL_STEPS if step not in text]
    assert not missing, f"{TUTORIAL.name} lacks the shell steps {missing}"
    assert "Redis" in text.split("Install and create the project")[0], (
        "the tutorial must say, before the first step, that Redis must be running"
    )
    paths = [b.path for b in blocks]
    assert len(paths) == len(set(paths)), f"a file is given twice: {paths}"
    for block in blocks:
        assert block.body.strip(), f"empty block for {block.path}"


def test_check_reports_nothing(project: Project) -> None:
    result = project.run(["manage.py", "check", "--fail-level", "WARNING"])
    assert result.returncode == 0, (
        f"`manage.py check --fail-level WARNING` in the tutorial's project exited with "
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
