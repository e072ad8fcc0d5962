"""A Django Tasks ``@progress_task`` whose worker cannot import it (issue 21 K): web
and worker run different code, django-tasks-db fails the job without running a
line of progress_ui, and the bar used to stay "pending 0 %" until the session
expired. Readers ask the queue about the job they remembered at enqueue
(``progress_ui.engine.queued``): a job the queue reports FAILED while its bar is
still PENDING ends in error, within the liveness window; a job that only waits
for a busy worker is never marked failed, however long it waits.

A real ``db_worker`` process on the SQLite test database and the Redis progress
cache; the task's module exists only in this (web) process's ``sys.path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

pytest.importorskip("progress_ui.contrib.django_tasks", exc_type=ImportError)

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from progress_ui import ProgressSession
from progress_ui.core.messages import JOB_NOT_STARTED
from progress_ui.engine import store
from tests.support import settings_tasks
from tests.support.tasks_app.tasks import count_to
from tests.support.workers import WorkerProcess, running_db_worker

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.worker]

Snapshot = Mapping[str, Any]
#: Every wait is bounded by this (2 shared, noisy cores).
WAIT = 30.0
#: The liveness window with the defaults: WORKER_STALE_TIMEOUT (10 s) plus about
#: three beat intervals (5 s each). A failed job must show within it.
LIVENESS_WINDOW = 25.0
#: This process checks queued jobs at most once per WORKER_BEAT_INTERVAL: fast here.
UI = {"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60, "WORKER_BEAT_INTERVAL": 0.2}

# Committed rows (no test transaction), so that the worker sees them.
on_worker_db = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def web_only_tasks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A module of progress tasks that this process imports and the worker does
    not have: web and worker run different code."""
    folder = tmp_path_factory.mktemp("web_only")
    name = f"web_only_tasks_{secrets.token_hex(4)}"
    (folder / f"{name}.py").write_text(
        "from progress_ui.contrib.django_tasks import progress_task\n\n\n"
        "@progress_task\n"
        "def count(progress, rows):\n"
        "    for _ in progress.iterate(range(rows)):\n"
        "        pass\n"
        "    return rows\n"
    )
    sys.path.insert(0, str(folder))
    try:
        with tasks_installed():
            yield importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(name, None)


@contextlib.contextmanager
def tasks_installed() -> Iterator[None]:
    apps = [a for a in settings_tasks.TASK_APPS if a not in settings.INSTALLED_APPS]
    with override_settings(
        INSTALLED_APPS=[*settings.INSTALLED_APPS, *apps],
        TASKS=settings_tasks.TASKS,
        DATABASE_ROUTERS=[],
    ):
        yield


def worker_env() -> dict[str, str]:
    return {
        "PROGRESS_TEST_CACHE": "redis",
        "PROGRESS_TEST_DB": str(connection.settings_dict["NAME"]),
        "REDIS_URL": settings.REDIS_URL,
    }


@pytest.fixture(scope="module")
def worker(
    web_only_tasks: Any, django_db_setup: None, django_db_blocker: Any
) -> Iterator[WorkerProcess]:
    """A db_worker on the "default" queue only, without the web-only module."""
    with tasks_installed():
        with django_db_blocker.unblock():
            call_command("migrate", "django_tasks_database", verbosity=0)
        with running_db_worker(env=worker_env(), queues="default") as process:
            yield process


@pytest.fixture
def live(worker: WorkerProcess, request: pytest.FixtureRequest) -> Iterator[WorkerProcess]:
    from tests.conftest import _use_backend

    for _ in _use_backend("redis", request):
        with override_settings(PROGRESS_UI=UI):
            yield worker


def wait_for(
    session: ProgressSession,
    condition: Callable[[Snapshot], bool],
    worker: WorkerProcess,
    timeout: float = WAIT,
) -> Snapshot:
    deadline = time.monotonic() + timeout
    while True:
        snap = session.to_dict()  # what a viewer reads: it checks the queued jobs
        if condition(snap):
            return snap
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f}s: {snap}\n{worker.output()}")
        time.sleep(0.05)


def status_of(snap: Snapshot, task_id: str) -> str:
    return str(snap["tasks"][task_id]["status"])


@on_worker_db
def test_a_task_the_worker_cannot_import_ends_in_error(
    live: WorkerProcess, web_only_tasks: Any
) -> None:
    from django_tasks_db.models import DBTaskResult

    session = ProgressSession.create({"import": "Import", "report": "Report"})
    started = time.monotonic()
    result: Any = session.enqueue("import", web_only_tasks.count, 5)
    # The queue's own record says so first: the worker could not import the task.
    deadline = time.monotonic() + WAIT
    while DBTaskResult.objects.get(id=result.id).status != "FAILED":
        assert time.monotonic() < deadline, live.output()
        time.sleep(0.05)
    row = DBTaskResult.objects.get(id=result.id)
    assert row.exception_class_path == "builtins.ModuleNotFoundError"

    # Within the liveness window, as a lost worker would show.
    failed = lambda s: status_of(s, "import") == "error"  # noqa: E731
    snap = wait_for(session, failed, live, timeout=LIVENESS_WINDOW)
    elapsed = time.monotonic() - started
    print(f"task the worker cannot import: error on the bar after {elapsed:.2f}s")
    task = snap["tasks"]["import"]
    assert task["message"] == JOB_NOT_STARTED == "The worker could not start this task."
    assert status_of(snap, "report") == "pending"  # nothing was enqueued for it
    assert snap["status"] == "error"


@on_worker_db
async def test_a_stream_shows_it_too(live: WorkerProcess, web_only_tasks: Any) -> None:
    """The async path (a stream's poller asks the queue with ``aget_result``)."""
    from asgiref.sync import sync_to_async

    session = await ProgressSession.acreate({"import": "Import"})
    await session.aenqueue("import", web_only_tasks.count, 5)
    lines: list[dict[str, Any]] = []

    async def read() -> None:
        async for line in session.astream(poll_interval=0.05):
            lines.append(json.loads(line))

    await asyncio.wait_for(read(), WAIT)
    last = lines[-1]
    assert last["status"] == "error", (lines, await sync_to_async(live.output)())
    assert last["tasks"]["import"]["message"] == JOB_NOT_STARTED


@on_worker_db
def test_a_job_waiting_for_a_busy_worker_is_not_failed(live: WorkerProcess) -> None:
    """Queued on a queue no worker serves yet: it waits, its bar pending, for many
    checks of the queue; a worker that comes later runs it to the end."""
    session = ProgressSession.create({"count": "Count"})
    result: Any = session.enqueue("count", count_to.using(queue_name="loss"), 3)
    assert store.queued_jobs(session.session_id, ["count"]) == {
        "count": {"runner": "django_tasks", "backend": "default", "id": str(result.id)}
    }
    deadline = time.monotonic() + 3.0  # 15 checks of the queue at 0.2 s
    while time.monotonic() < deadline:
        assert status_of(session.to_dict(), "count") == "pending"
        time.sleep(0.05)
    result.refresh()
    assert result.status == "READY"

    with running_db_worker(env=worker_env(), queues="loss") as late:
        snap = wait_for(session, lambda s: s["status"] == "complete", late)
    assert snap["tasks"]["count"]["message"].startswith("3 rows in pid")


def test_the_immediate_backend_remembers_nothing(locmem: str) -> None:
    """A backend that keeps no results (the work ran already) costs no cache write."""
    with override_settings(TASKS=settings_tasks.TASKS):
        session = ProgressSession.create({"count": "Count"})
        session.enqueue("count", count_to.using(backend="immediate"), 2)
        assert session.to_dict()["tasks"]["count"]["current"] == 2  # it ran here
        assert store.queued_jobs(session.session_id, ["count"]) == {}


def test_the_app_registers_the_django_tasks_probe() -> None:
    from progress_ui.contrib.django_tasks import QUEUED_RUNNER
    from progress_ui.engine import queued

    assert QUEUED_RUNNER in queued._probes
