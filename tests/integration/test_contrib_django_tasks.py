"""progress_ui.contrib.django_tasks: progress tasks on Django Tasks.

Fast tests run the work in this process (ImmediateBackend) or only enqueue it
(django-tasks-db's DatabaseBackend, no worker). Worker tests start a real
``db_worker`` process on a database shared with this process (the SQLite test
database file, or a PostgreSQL database made for the run) and a shared progress
cache (Redis or files), enqueue here and watch the progress arrive here.

The test settings do not install django-tasks-db: these tests add it (and
``TASKS``) with ``override_settings`` and migrate its table themselves. A worker
uses ``tests.support.settings_tasks``, which has both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test import Client, override_settings
from django.urls import include, path
from django.utils.module_loading import import_string
from django.views.generic import TemplateView

from progress_ui import ProgressSession, TaskProgress, UnknownTaskError
from progress_ui.contrib.django_tasks import ProgressTask, Task, progress_task
from progress_ui.contrib.threads import get_runner
from progress_ui.mixins import StartProgressMixin
from tests.conftest import _use_backend, require_redis
from tests.support import settings_tasks
from tests.support.tasks_app.tasks import (
    acount_to,
    count_slowly,
    count_to,
    fail_badly,
    fail_visibly,
    release_key,
    wait_for_release,
)
from tests.support.workers import (
    WorkerError,
    WorkerProcess,
    kill_process,
    running_db_worker,
    running_process,
    skewed_clock_env,
    start_process,
    stop_process,
)

#: What ``ProgressSession.to_dict()`` returns.
Snapshot = Mapping[str, Any]
#: Every wait for a worker is bounded by this (2 shared, noisy cores).
WAIT = 30.0
#: This process's name for the PostgreSQL database of the worker tests.
PG_ALIAS = "tasks_pg"
ROUTER = "tests.support.tasks_app.routers.TasksDatabaseRouter"


def finished(snap: Snapshot) -> bool:
    return all(t["status"] in ("complete", "error") for t in snap["tasks"].values())


def wait_for(
    session: ProgressSession,
    condition: Callable[[Snapshot], bool],
    *,
    timeout: float = WAIT,
    worker: WorkerProcess | None = None,
) -> Snapshot:
    """Poll the session until ``condition`` holds; fail (with what was last seen
    and the worker's output) after ``timeout`` seconds or if the worker died."""
    deadline = time.monotonic() + timeout
    while True:
        snap = session.to_dict()
        if condition(snap):
            return snap
        if worker is not None and not worker.is_running():
            pytest.fail(f"The worker exited: {snap}\n{worker.output()}")
        if time.monotonic() > deadline:
            output = "" if worker is None else f"\nworker output:\n{worker.output()}"
            pytest.fail(f"Not reached within {timeout:.0f}s; last snapshot: {snap}{output}")
        time.sleep(0.05)


def pid_in(message: str | None) -> int:
    match = re.search(r"pid (\d+)", message or "")
    assert match, f"no pid in {message!r}"
    return int(match.group(1))


@contextlib.contextmanager
def tasks_installed(tasks_database: str | None = None) -> Iterator[None]:
    """django-tasks-db installed and ``TASKS`` set, in this process; with
    ``tasks_database``, its table lives in that database (router)."""
    apps = [a for a in settings_tasks.TASK_APPS if a not in settings.INSTALLED_APPS]
    # Set either way: an outer worker fixture's router may be in force.
    extra: dict[str, Any] = {
        "DATABASE_ROUTERS": [] if tasks_database is None else [ROUTER],
        "PROGRESS_TEST_TASKS_DATABASE": tasks_database,
    }
    with override_settings(
        INSTALLED_APPS=[*settings.INSTALLED_APPS, *apps], TASKS=settings_tasks.TASKS, **extra
    ):
        yield


def migrate_tasks(database: str = DEFAULT_DB_ALIAS) -> None:
    call_command("migrate", "django_tasks_database", database=database, verbosity=0)


def task_rows() -> int:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.count()


# -- fast: ImmediateBackend, in this process ------------------------------------------


@pytest.fixture
def immediate(locmem: str) -> Iterator[str]:
    """TASKS set; ``.using(backend="immediate")`` runs a task here and now."""
    with override_settings(TASKS=settings_tasks.TASKS):
        yield locmem


def test_the_decorated_name_is_a_django_task_a_worker_can_import(immediate: str) -> None:
    assert isinstance(count_to, ProgressTask)
    assert isinstance(count_to, Task)
    assert count_to.name == "count_to"
    assert count_to.module_path == "tests.support.tasks_app.tasks.count_to"
    # What a worker does with the stored path:
    assert import_string(count_to.module_path) is count_to
    assert (count_to.priority, count_to.queue_name, count_to.backend) == (0, "default", "default")
    assert fail_visibly.priority == 10
    # using() keeps the progress methods.
    moved = count_to.using(backend="immediate", priority=3)
    assert isinstance(moved, ProgressTask)
    assert moved.func is count_to.func
    assert moved.priority == 3


def plain_work(progress: TaskProgress, n: int) -> int:
    return n * 2


def test_decorator_options_go_to_the_django_task(immediate: str) -> None:
    made = progress_task(priority=-5, queue_name="default", backend="immediate")(plain_work)
    assert (made.priority, made.queue_name, made.backend) == (-5, "default", "immediate")
    assert progress_task(plain_work).backend == "default"
    assert made.work is plain_work
    assert made(TaskProgress(None, "t"), 4) == 8


def test_a_backends_own_task_class_is_kept(immediate: str) -> None:
    from tests.support.tasks_app.backends import LabelledTask

    tasks = {
        **settings_tasks.TASKS,
        "labelled": {"BACKEND": "tests.support.tasks_app.backends.LabelledImmediateBackend"},
    }
    with override_settings(TASKS=tasks):
        made = progress_task(backend="labelled")(plain_work)
        assert isinstance(made, LabelledTask)
        assert isinstance(made, ProgressTask)
        assert made.label == "labelled"
        moved = made.using(priority=2)
        assert type(moved) is type(made)
        session = ProgressSession.create({"a": "A"})
        assert session.enqueue("a", moved, 21).return_value == 42
        assert wait_for(session, finished)["status"] == "complete"


@pytest.mark.skipif(
    not hasattr(Task, "_reconstruct"), reason="the django-tasks backport cannot pickle Tasks"
)
def test_a_task_pickles_by_reference(immediate: str) -> None:
    import pickle

    moved = pickle.loads(pickle.dumps(count_to.using(priority=4)))
    assert isinstance(moved, ProgressTask)
    assert (moved.func, moved.priority) == (count_to.func, 4)


def test_a_nested_function_is_refused(immediate: str) -> None:
    def nested(progress: TaskProgress) -> None:
        pass

    with pytest.raises(Exception, match="module level"):
        progress_task(nested)


def test_the_work_can_be_called_directly() -> None:
    assert count_to(TaskProgress(None, "import"), 2, label="items") == {
        "pid": os.getpid(),
        "count": 2,
    }
    assert count_to.work.__name__ == "count_to"


def test_enqueue_runs_the_work_and_completes(immediate: str) -> None:
    session = ProgressSession.create({"import": "Import products"})
    result = session.enqueue("import", count_to.using(backend="immediate"), 3, label="rows")

    assert result.status == "SUCCESSFUL"
    assert result.return_value == {"pid": os.getpid(), "count": 3}
    snap = wait_for(session, finished)
    task = snap["tasks"]["import"]
    assert snap["status"] == "complete"
    assert (task["status"], task["percent"], task["current"], task["total"]) == (
        "complete",
        100,
        3,
        3,
    )
    assert task["message"] == f"3 rows in pid {os.getpid()}"


def test_enqueue_progress_is_what_session_enqueue_calls(immediate: str) -> None:
    session = ProgressSession.create({"a": "A"})
    result = count_to.using(backend="immediate").enqueue_progress(session, "a", 1)
    assert result.args == [session.session_id, "a", 1]
    assert wait_for(session, finished)["tasks"]["a"]["status"] == "complete"


def test_a_progress_error_shows_its_message(immediate: str) -> None:
    session = ProgressSession.create({"prices": "Update prices"})
    result = session.enqueue("prices", fail_visibly.using(backend="immediate"), "Supplier 503")

    assert result.status == "FAILED"
    assert result.errors[0].exception_class_path == "progress_ui.exceptions.ProgressError"
    task = wait_for(session, finished)["tasks"]["prices"]
    assert (task["status"], task["message"], task["percent"]) == ("error", "Supplier 503", 30)


def test_a_cancelled_progress_task_is_a_success_that_says_so(
    immediate: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Django Tasks has no cancelled state: the result is SUCCESSFUL with the value
    "cancelled", and one INFO line says so, not an error with a traceback."""
    session = ProgressSession.create({"a": "A"})
    session.cancel("a")
    with caplog.at_level("INFO", logger="progress_ui"):
        result = count_to.using(backend="immediate").enqueue_progress(session, "a", 3)
    assert (result.status, result.return_value) == ("SUCCESSFUL", "cancelled")
    assert session.to_dict()["tasks"]["a"]["status"] == "cancelled"
    assert [r.levelname for r in caplog.records if "stopped after a cancel" in r.message] == [
        "INFO"
    ]
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]


def test_another_exception_shows_the_generic_message(
    immediate: str, caplog: pytest.LogCaptureFixture
) -> None:
    session = ProgressSession.create({"upload": "Upload"})
    with override_settings(
        PROGRESS_UI={"CACHE_ALIAS": immediate, "GENERIC_ERROR_MESSAGE": "The upload failed."}
    ):
        result = session.enqueue("upload", fail_badly.using(backend="immediate"))
        snap = wait_for(session, finished)

    assert result.status == "FAILED"
    assert result.errors[0].exception_class_path == "builtins.RuntimeError"
    assert snap["tasks"]["upload"]["message"] == "The upload failed."
    assert "hunter2" not in str(snap)
    assert "hunter2" in caplog.text  # logged for the developers, never shown


async def test_aenqueue_progress(immediate: str) -> None:
    session = ProgressSession.create({"a": "A"})
    result = await count_to.using(backend="immediate").aenqueue_progress(session, "a", 2)
    assert result.status == "SUCCESSFUL"
    assert result.return_value["count"] == 2


# -- fast: DatabaseBackend, enqueued only -------------------------------------------------


@pytest.fixture
def db_tasks(transactional_db: None, locmem: str) -> Iterator[None]:
    """django-tasks-db's backend as the default, its table in the test database."""
    with tasks_installed():
        migrate_tasks()
        yield


def test_enqueue_stores_json_arguments_for_a_worker(db_tasks: None) -> None:
    from django_tasks_db.models import DBTaskResult

    session = ProgressSession.create({"import": "Import"})
    result = session.enqueue("import", count_to, 2, label="rows")

    row = DBTaskResult.objects.get(id=result.id)
    assert row.task_path == "tests.support.tasks_app.tasks.count_to"
    assert row.args_kwargs == {
        "args": [session.session_id, "import", 2],
        "kwargs": {"label": "rows"},
    }
    assert row.status == "READY"
    # Nothing runs it here: the session waits, pending.
    assert session.to_dict()["tasks"]["import"]["status"] == "pending"


def test_an_unknown_task_id_enqueues_nothing(db_tasks: None) -> None:
    session = ProgressSession.create({"import": "Import"})
    before = task_rows()

    with pytest.raises(UnknownTaskError, match="import"):
        session.enqueue("nope", count_to, 1)
    with pytest.raises(UnknownTaskError):
        count_to.enqueue_progress(session, "nope", 1)

    assert task_rows() == before


def test_arguments_that_are_not_json_enqueue_nothing(db_tasks: None) -> None:
    session = ProgressSession.create({"import": "Import"})
    before = task_rows()

    with pytest.raises(TypeError, match="Unsupported type"):
        session.enqueue("import", count_to, object())

    assert task_rows() == before
    assert session.to_dict()["tasks"]["import"]["status"] == "pending"


# -- a real db_worker process -------------------------------------------------------------


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL is not usable: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}; CI requires it.", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, known here as ``PG_ALIAS``;
    dropped on exit. Skips (fails on CI) when PostgreSQL or psycopg is missing."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        _postgres_unavailable("psycopg is not installed")
    server = settings_tasks.POSTGRES
    name = f"test_progress_ui_tasks_{os.getpid()}"
    try:
        admin = psycopg.connect(
            host=server["HOST"],
            port=server["PORT"],
            user=server["USER"],
            password=server["PASSWORD"],
            dbname=server["NAME"],
            autocommit=True,
            connect_timeout=3,
        )
    except psycopg.OperationalError as exc:
        _postgres_unavailable(str(exc).strip())
    database = sql.Identifier(name)
    with admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(database))
        # The test settings have one database; this process needs a second alias
        # for the duration (the worker gets it as its default, by environment).
        config = {**server, "NAME": name, "TEST": {"NAME": name}}
        connections.settings[PG_ALIAS] = connections.configure_settings(
            {DEFAULT_DB_ALIAS: {}, PG_ALIAS: config}
        )[PG_ALIAS]
        try:
            yield name
        finally:
            connections[PG_ALIAS].close()
            with contextlib.suppress(AttributeError):
                del connections[PG_ALIAS]
            del connections.settings[PG_ALIAS]
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))


@dataclass
class Worker:
    process: WorkerProcess
    database: str
    cache: str


SETUPS = [
    pytest.param(("sqlite", "redis"), marks=pytest.mark.redis, id="sqlite-redis"),
    pytest.param(("sqlite", "file"), id="sqlite-file"),
    pytest.param(("postgres", "redis"), marks=pytest.mark.redis, id="postgres-redis"),
    pytest.param(("postgres", "file"), id="postgres-file"),
]


@pytest.fixture(scope="module", params=SETUPS)
def worker(
    request: pytest.FixtureRequest, django_db_setup: None, django_db_blocker: Any
) -> Iterator[Worker]:
    """A db_worker process sharing this process's tasks database and progress
    cache; stopped (by PID) when the module's tests with this setup are done."""
    database, cache = request.param
    if cache == "redis":
        require_redis()
    with contextlib.ExitStack() as stack:
        env = {
            "PROGRESS_TEST_CACHE": cache,
            "PROGRESS_TEST_CACHE_DIR": str(settings.CACHE_DIR),
            "REDIS_URL": settings.REDIS_URL,
        }
        if database == "postgres":
            env["PROGRESS_TEST_PG_NAME"] = stack.enter_context(postgres_database())
            stack.enter_context(tasks_installed(PG_ALIAS))
            with django_db_blocker.unblock():
                migrate_tasks(PG_ALIAS)
        else:
            # The test database is a file: the worker opens the same one.
            env["PROGRESS_TEST_DB"] = str(connection.settings_dict["NAME"])
            stack.enter_context(tasks_installed())
            with django_db_blocker.unblock():
                migrate_tasks()
        process = stack.enter_context(running_db_worker(env=env, queues="default"))
        yield Worker(process, database, cache)


@pytest.fixture
def live(worker: Worker, request: pytest.FixtureRequest) -> Iterator[Worker]:
    """The worker, with this process using the same progress cache."""
    for _ in _use_backend(worker.cache, request):
        yield worker


def wait_result(result: Any, worker: WorkerProcess) -> None:
    """Refresh a TaskResult until the worker has recorded its outcome."""
    deadline = time.monotonic() + WAIT
    result.refresh()
    while not result.is_finished:
        if time.monotonic() > deadline:
            pytest.fail(f"{result.id} still {result.status}:\n{worker.output()}")
        time.sleep(0.05)
        result.refresh()


# Committed rows (no test transaction) so the worker sees them; "__all__" covers the
# PostgreSQL alias, which exists only while its worker runs.
on_worker_db = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.mark.slow
@on_worker_db
def test_the_worker_runs_the_work(live: Worker) -> None:
    session = ProgressSession.create(
        {"import": "Import products", "prices": "Update prices", "upload": "Upload"}
    )
    ok = session.enqueue("import", count_to, 4, label="rows")
    visible = session.enqueue("prices", fail_visibly, "Supplier 503")
    generic = session.enqueue("upload", fail_badly)

    snap = wait_for(session, finished, worker=live.process)

    tasks = snap["tasks"]
    assert snap["status"] == "error"
    assert (tasks["import"]["status"], tasks["import"]["current"], tasks["import"]["total"]) == (
        "complete",
        4,
        4,
    )
    assert (tasks["prices"]["status"], tasks["prices"]["message"]) == ("error", "Supplier 503")
    assert (tasks["upload"]["status"], tasks["upload"]["message"]) == (
        "error",
        settings.PROGRESS_UI.get("GENERIC_ERROR_MESSAGE", "Something went wrong."),
    )
    # The work ran in the worker process, not here.
    assert pid_in(tasks["import"]["message"]) == live.process.pid != os.getpid()
    # Django's results agree (the worker records them after the work returns).
    for result in (ok, visible, generic):
        wait_result(result, live.process)
    assert ok.status == "SUCCESSFUL"
    assert ok.return_value == {"pid": live.process.pid, "count": 4}
    assert visible.status == generic.status == "FAILED"


@pytest.mark.slow
@on_worker_db
def test_the_worker_runs_async_work_and_an_async_job(live: Worker) -> None:
    session = ProgressSession.create({"import": "Import products", "a": "A"})
    result = session.enqueue("import", acount_to, 3)
    snap = wait_for(
        session, lambda s: s["tasks"]["import"]["status"] == "complete", worker=live.process
    )
    task = snap["tasks"]["import"]
    assert (task["current"], task["total"]) == (3, 3)
    assert task["message"] == f"3 rows, async, in pid {live.process.pid}"
    wait_result(result, live.process)
    assert result.status == "SUCCESSFUL"
    assert result.return_value == {"pid": live.process.pid, "count": 3}
    # An async def job of a whole session, through the view mixins' runner.
    job = ProgressSession.create({"a": "A", "b": "B"})
    get_runner("django_tasks")(job, "tests.support.async_jobs.async_job", {"rows_per_task": 2})
    snap = wait_for(job, lambda s: s["status"] == "complete", worker=live.process)
    for task in snap["tasks"].values():
        assert task["current"] == task["total"] == 2
        assert pid_in(task["message"]) == live.process.pid != os.getpid()


@pytest.mark.slow
@on_worker_db
def test_progress_arrives_while_the_worker_runs(live: Worker) -> None:
    session = ProgressSession.create({"fetch": "Fetch prices"})
    session.enqueue("fetch", wait_for_release, WAIT)

    def halfway(snap: Snapshot) -> bool:
        task = snap["tasks"]["fetch"]
        return task["status"] == "running" and task["current"] == 1

    try:
        task = wait_for(session, halfway, worker=live.process)["tasks"]["fetch"]
        assert (task["total"], task["simulated"]) == (2, False)
        assert pid_in(task["message"]) == live.process.pid
    finally:
        # Even on failure: a stuck task would hold the worker for the next test.
        caches[live.cache].set(release_key(session.session_id), True)
    snap = wait_for(session, finished, worker=live.process)
    assert snap["status"] == "complete"
    assert snap["tasks"]["fetch"]["current"] == 2
    assert snap["tasks"]["fetch"]["message"] == f"done in pid {live.process.pid}"


# -- the process helpers ----------------------------------------------------------------

SLEEPER = "import signal, sys, time; {}print('up', flush=True); time.sleep(60)"


def sleeper(ignore_term: bool = False) -> list[str]:
    setup = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
    return [sys.executable, "-c", SLEEPER.format(setup)]


def test_a_process_is_ready_when_it_prints_the_line_and_stops_on_sigterm() -> None:
    process = start_process(sleeper(), ready="up", timeout=WAIT)
    try:
        assert process.is_running()
        assert process.pid != os.getpid()
    finally:
        assert stop_process(process) == -signal.SIGTERM
    assert not process.is_running()
    assert stop_process(process) == -signal.SIGTERM  # again: nothing to do


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    process = start_process(sleeper(ignore_term=True), ready=lambda p: "up" in p.output())
    started = time.monotonic()
    assert stop_process(process, timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < WAIT


def test_kill_process_is_a_sigkill_and_stop_process_reaps_it() -> None:
    with running_process(sleeper(), ready="up") as process:
        assert kill_process(process) == -signal.SIGKILL
        assert not process.is_running()
    assert process.proc.returncode == -signal.SIGKILL


def test_a_process_that_exits_before_it_is_ready_fails_with_its_output() -> None:
    argv = [sys.executable, "-c", "print('no database here'); raise SystemExit(3)"]
    with pytest.raises(WorkerError, match=r"exited with 3[\s\S]*no database here"):
        start_process(argv, ready="never")


def test_a_process_that_never_gets_ready_is_stopped() -> None:
    with pytest.raises(WorkerError, match="not ready within"):
        start_process(sleeper(), ready="never", timeout=0.5)


# -- worker loss ---------------------------------------------------------------------------

#: Fast liveness: a beat every 0.3 s, keys live 0.6 s.
FAST_LIVENESS = {"WORKER_BEAT_INTERVAL": 0.3, "WORKER_STALE_TIMEOUT": 0.6}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_turns_its_task_to_error(request: pytest.FixtureRequest) -> None:
    from django_tasks_db.models import DBTaskResult

    for cache in _use_backend("file", request):
        ui = {**settings.PROGRESS_UI, **FAST_LIVENESS}
        env = {
            "PROGRESS_TEST_CACHE": cache,
            "PROGRESS_TEST_CACHE_DIR": str(settings.CACHE_DIR),
            "PROGRESS_TEST_DB": str(connection.settings_dict["NAME"]),
            "PROGRESS_TEST_UI": json.dumps(FAST_LIVENESS),
        }
        with override_settings(PROGRESS_UI=ui), tasks_installed():
            migrate_tasks()
            # Its own queue: the module's other workers may share this database.
            with running_db_worker(env=env, queues="loss") as process:
                session = ProgressSession.create({"fetch": "Fetch prices"})
                result = session.enqueue("fetch", wait_for_release.using(queue_name="loss"), WAIT)
                wait_for(session, lambda s: s["tasks"]["fetch"]["current"] == 1, worker=process)

                assert kill_process(process) == -signal.SIGKILL
                task = wait_for(session, lambda s: s["tasks"]["fetch"]["status"] == "error")
            assert task["tasks"]["fetch"]["message"] == "The worker stopped responding."
            # django-tasks-db does not notice: the result stays RUNNING, claimed by
            # the dead worker (nothing re-runs it).
            assert DBTaskResult.objects.get(id=result.id).status == "RUNNING"


# -- a worker whose clock is off ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("skew", [30.0, -30.0], ids=["ahead", "behind"])
@pytest.mark.parametrize("cache", [pytest.param("redis", marks=pytest.mark.redis), "file"])
def test_a_worker_whose_clock_is_off_shows_true_bars(
    request: pytest.FixtureRequest, cache: str, skew: float
) -> None:
    """Issue 21, N: a db_worker 30 s ahead held its finished bar at 99 % "running"
    for 30 s; 30 s behind, its counted bar read "stalled" all along (on the file
    cache, "The worker stopped responding." at once: its liveness keys expired
    by its clock). The times it stores are the store's now, so viewers agree."""
    if cache == "redis":
        require_redis()
    for alias in _use_backend(cache, request):
        ui = {**settings.PROGRESS_UI, **FAST_LIVENESS}
        env = {
            "PROGRESS_TEST_CACHE": alias,
            "PROGRESS_TEST_CACHE_DIR": str(settings.CACHE_DIR),
            "PROGRESS_TEST_DB": str(connection.settings_dict["NAME"]),
            "REDIS_URL": settings.REDIS_URL,
            "PROGRESS_TEST_UI": json.dumps(FAST_LIVENESS),
            **skewed_clock_env(skew),
        }
        with override_settings(PROGRESS_UI=ui), tasks_installed():
            migrate_tasks()
            with running_db_worker(env=env, queues="clock") as process:
                session = ProgressSession.create({"count": "Count"})
                result = session.enqueue("count", count_slowly.using(queue_name="clock"), 40, 0.1)
                readings = []
                deadline = time.monotonic() + WAIT
                while not result.is_finished:
                    assert time.monotonic() < deadline, process.output()
                    readings.append(session.to_dict()["tasks"]["count"])
                    time.sleep(0.1)
                    result.refresh()
                # The worker records the result once the work returned: the bar
                # ends its completing animation (0.3 s) within the next polls.
                ended = time.monotonic()
                task = wait_for(session, lambda s: s["status"] == "complete", timeout=2.0)
                assert time.monotonic() - ended < 2.0
    assert result.status == "SUCCESSFUL", process.output()
    running = [r for r in readings if r["status"] == "running" and r["current"]]
    assert len(running) >= 10, readings
    assert not [r for r in running if r["stalled"]], running
    assert not [r for r in readings if r["status"] == "error"], readings
    done = task["tasks"]["count"]
    assert done["started_at"] is not None and done["finished_at"] is not None
    assert 3.0 <= done["finished_at"] - done["started_at"] < WAIT


# -- the view mixins' "django_tasks" runner ---------------------------------------


@pytest.mark.slow
@on_worker_db
def test_the_django_tasks_runner_runs_a_job_in_the_worker(live: Worker) -> None:
    session = ProgressSession.create({"a": "A", "b": "B"})
    get_runner("django_tasks")(session, "tests.support.jobs.count_job", {"rows": 4})
    snap = wait_for(session, lambda s: s["status"] == "complete", worker=live.process)
    for task in snap["tasks"].values():
        assert task["current"] == task["total"] == 4
        assert pid_in(task["message"]) == live.process.pid != os.getpid()


@pytest.mark.slow
@on_worker_db
def test_a_cancelled_job_stops_in_the_worker_and_a_queued_one_never_runs(
    live: Worker,
) -> None:
    running = ProgressSession.create({"a": "A"})
    get_runner("django_tasks")(running, "tests.support.jobs.slow_job", {"seconds": WAIT})
    wait_for(running, lambda s: "pid" in s["tasks"]["a"]["message"], worker=live.process)
    running.cancel()
    before = running.to_dict()["tasks"]["a"]["message"]
    time.sleep(0.5)  # the job stopped at its next update: no more messages
    assert running.to_dict()["tasks"]["a"]["message"] == before
    assert running.to_dict()["tasks"]["a"]["status"] == "cancelled"

    queued = ProgressSession.create({"a": "A"})
    queued.cancel()  # before the worker picks it up
    get_runner("django_tasks")(queued, "tests.support.jobs.count_job", {"rows": 4})
    time.sleep(1.0)
    assert queued.to_dict()["tasks"]["a"]["current"] is None


# -- starts are atomic ---------------------------------------------------------------

#: Sessions the start view created, newest last.
CREATED: list[ProgressSession] = []


class TasksStartView(StartProgressMixin, TemplateView):
    template_name = "progress_ui/page.html"
    progress_tasks = {"a": "A", "b": "B"}
    progress_job = "tests.support.jobs.count_job"
    progress_runner = "django_tasks"

    def get_progress_job_kwargs(self) -> dict[str, Any]:
        given = self.request.POST.get("rows", "")
        # What a view may carelessly pass: JSON has no datetime and no set.
        return {"rows": {"now": datetime.now(UTC), "set": {1, 2}}.get(given, 2)}

    def create_progress_session(self) -> ProgressSession:
        session = super().create_progress_session()
        CREATED.append(session)
        return session


urlpatterns = [
    path("start/", TasksStartView.as_view()),
    path("progress/", include("progress_ui.urls")),
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("rows", ["now", "set"])
def test_arguments_that_are_not_json_end_the_session_with_a_clear_500(
    db_tasks: None, client: Client, rows: str
) -> None:
    before = task_rows()
    response = client.post("/start/", {"rows": rows})

    assert response.status_code == 500
    assert response.content.decode() == StartProgressMixin.progress_start_error_message
    assert task_rows() == before  # nothing enqueued
    snap = CREATED[-1].to_dict()
    assert snap["status"] == "error"  # not left pending until its TTL
    assert {t["message"] for t in snap["tasks"].values()} == {
        StartProgressMixin.progress_start_error_message
    }
    # JSON arguments go through.
    assert client.post("/start/").status_code == 200
    assert task_rows() == before + 1
    assert CREATED[-1].to_dict()["status"] == "pending"


# -- the queue records what the bar shows (db_worker on PostgreSQL) --------------------------

#: Only the PostgreSQL and Redis setup of the module's worker.
on_postgres = pytest.mark.parametrize("worker", [SETUPS[2]], indirect=True)


@pytest.mark.slow
@on_worker_db
@on_postgres
def test_a_failed_job_is_failed_in_the_queue_and_a_cancelled_one_says_so(live: Worker) -> None:
    submit, fail = get_runner("django_tasks"), "tests.support.jobs.fail_job"
    visible, generic, fine = (ProgressSession.create({"a": "A", "b": "B"}) for _ in range(3))
    shown = submit(visible, fail, {"message": "Supplier 503"})
    hidden = submit(generic, fail, {})
    done = submit(fine, "tests.support.jobs.count_job", {"rows": 2})
    for result in (shown, hidden, done):
        wait_result(result, live.process)

    assert (shown.status, hidden.status, done.status) == ("FAILED", "FAILED", "SUCCESSFUL")
    assert shown.errors[0].exception_class_path == "progress_ui.exceptions.ProgressError"
    assert hidden.errors[0].exception_class_path == "builtins.RuntimeError"
    assert done.return_value == "complete"
    assert {t["message"] for t in visible.to_dict()["tasks"].values()} == {"Supplier 503"}
    assert {t["message"] for t in generic.to_dict()["tasks"].values()} == {
        settings.PROGRESS_UI.get("GENERIC_ERROR_MESSAGE", "Something went wrong.")
    }

    # Django Tasks has no "cancelled" state: a success that says so.
    running = ProgressSession.create({"a": "A"})
    stopped = submit(running, "tests.support.jobs.slow_job", {"seconds": WAIT})
    wait_for(running, lambda s: "pid" in s["tasks"]["a"]["message"], worker=live.process)
    running.cancel()
    queued = ProgressSession.create({"a": "A"})
    queued.cancel()
    never_ran = submit(queued, "tests.support.jobs.count_job", {"rows": 2})
    for result in (stopped, never_ran):
        wait_result(result, live.process)
        assert (result.status, result.return_value) == ("SUCCESSFUL", "cancelled")


@pytest.fixture
def web_only_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module this (web) process imports and the worker does not have: web and
    worker run different code."""
    name = f"web_only_jobs_{secrets.token_hex(4)}"
    (tmp_path / f"{name}.py").write_text(
        "def count(session):\n    for task_id in session.tasks:\n"
        "        session.update(task_id, percent=50)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


#: The liveness window (WORKER_STALE_TIMEOUT's default).
STALE = 10.0


@pytest.mark.slow
@on_worker_db
@on_postgres
def test_a_job_the_worker_cannot_import_ends_in_error(live: Worker, web_only_module: str) -> None:
    session = ProgressSession.create({"a": "A", "b": "B"})
    started = time.monotonic()
    result = get_runner("django_tasks")(session, f"{web_only_module}.count", {})

    def all_failed(snap: Snapshot) -> bool:
        return {t["status"] for t in snap["tasks"].values()} == {"error"}

    wait_for(session, all_failed, timeout=STALE, worker=live.process)
    print(f"job the worker cannot import: error after {time.monotonic() - started:.2f}s")
    wait_result(result, live.process)
    assert result.status == "FAILED"
    assert result.errors[0].exception_class_path == "builtins.ModuleNotFoundError"
    assert "cannot be imported here" in live.process.output()


@pytest.mark.slow
@on_worker_db
@on_postgres
def test_a_second_sigterm_ends_the_running_job_at_once(live: Worker) -> None:
    """db_worker's forced shutdown raises SystemExit inside the job: the bar shows
    it at once, long before the liveness check would (WORKER_STALE_TIMEOUT: 10 s)."""
    from progress_ui.contrib.django_tasks import run_progress_job

    env = {
        # The module worker's database; this worker takes only the "loss" queue.
        "PROGRESS_TEST_PG_NAME": connections.settings[PG_ALIAS]["NAME"],
        "PROGRESS_TEST_CACHE": live.cache,
        "REDIS_URL": settings.REDIS_URL,
    }
    with running_db_worker(env=env, queues="loss") as process:
        session = ProgressSession.create({"a": "A"})
        result = run_progress_job.using(queue_name="loss").enqueue(
            session.to_reference(), "tests.support.jobs.slow_job", {"seconds": WAIT}
        )
        wait_for(session, lambda s: "pid" in s["tasks"]["a"]["message"], worker=process)
        assert pid_in(session.to_dict()["tasks"]["a"]["message"]) == process.pid

        os.kill(process.pid, signal.SIGTERM)  # graceful: the job goes on
        deadline = time.monotonic() + WAIT
        while "shutting down gracefully" not in process.output():
            assert time.monotonic() < deadline, process.output()
            time.sleep(0.02)
        assert session.to_dict()["tasks"]["a"]["status"] == "running"
        os.kill(process.pid, signal.SIGTERM)  # forced: SystemExit in the job
        started = time.monotonic()
        snap = wait_for(session, lambda s: s["status"] == "error", timeout=STALE)
        elapsed = time.monotonic() - started

        print(f"second SIGTERM: error after {elapsed:.2f}s")
        assert snap["tasks"]["a"]["message"] == "Interrupted."
        assert elapsed < 3.0, elapsed
        assert process.wait_exit(WAIT) is not None  # the worker has gone
    result.refresh()
    assert result.status == "FAILED"
