"""progress_ui.contrib.django_tasks on Django Tasks backends other than django-tasks-db,
each with a real worker process on Redis:

- Huey 3's backend (``huey.contrib.djhuey.tasks_backend.HueyBackend``), ``manage.py run_huey``;
- django-tasks-rq (``django_tasks_rq.RQBackend``), django-rq's
  ``manage.py rqworker --job-class django_tasks_rq.Job``;
- django-tasks-redis (``django_tasks_redis.RedisTaskBackend``, Django 6 only),
  ``manage.py run_redis_tasks --continuous``.

The test process enqueues with the same settings as the worker
(``tests/support/{huey,tasks_rq,tasks_redis}_settings.py``, applied here with
``override_settings``) and reads progress from the shared Redis cache. Each
backend's tests share one worker (a module-scoped, parametrized fixture: pytest
runs them together, the SIGKILL test last). Every wait is bounded; the worker
is stopped by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import pytest

pytest.importorskip("progress_ui.contrib.django_tasks", exc_type=ImportError)

from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from progress_ui import ProgressSession
from progress_ui.contrib.threads import get_runner
from tests.conftest import require_redis
from tests.support import jobs
from tests.support.tasks_app.plain_tasks import (
    count_to,
    fail_badly,
    fail_visibly,
    release_key,
    wait_for_release,
)
from tests.support.workers import WorkerProcess, kill_process, running_process

GENERIC = "Something went wrong."
WORKER_LOST = "The worker stopped responding."
WAIT = 30.0
FAST_LIVENESS = {"WORKER_BEAT_INTERVAL": 0.3, "WORKER_STALE_TIMEOUT": 0.6}
UI = {"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60}

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.worker]


@dataclass
class Backend:
    """How to run one backend: its worker's command, settings and readiness line,
    the test process's settings, and the queue's clean-up."""

    name: str
    settings_module: str
    argv: list[str]
    ready: str
    #: (run id) -> the worker's extra environment.
    env: Callable[[str], dict[str, str]]
    #: (run id) -> the test process's settings (besides TASKS and PROGRESS_UI).
    overrides: Callable[[str], dict[str, Any]]
    #: (run id) -> the queue emptied (after the run).
    flush: Callable[[str], None]


def _django(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", *args]


# -- Huey --------------------------------------------------------------------------


def _huey_overrides(run: str) -> dict[str, Any]:
    from tests.support import huey_settings

    return {"HUEY": {**huey_settings.HUEY, "name": run}, "TASKS": huey_settings.TASKS}


def _huey_env(run: str) -> dict[str, str]:
    from tests.support import huey_settings

    return {"PROGRESS_HUEY_NAME": run, "PROGRESS_HUEY_URL": huey_settings.HUEY_URL}


def _huey_flush(run: str) -> None:
    # djhuey reads HUEY once, when first imported: under this run's overrides.
    from huey.contrib.djhuey import HUEY

    assert HUEY.name == run, "huey.contrib.djhuey was imported before this run's settings"
    HUEY.flush()


# -- django-tasks-rq ---------------------------------------------------------------


def _rq_overrides(run: str) -> dict[str, Any]:
    # The queue ("default", the tasks' queue) lives in the progress cache's database.
    from tests.support import tasks_rq_settings

    return {"RQ_QUEUES": {"default": {"URL": settings.REDIS_URL}}, "TASKS": tasks_rq_settings.TASKS}


def _rq_env(run: str) -> dict[str, str]:
    return {"PROGRESS_RQ_URL": settings.REDIS_URL}


def _rq_flush(run: str) -> None:
    import django_rq

    django_rq.get_queue("default").empty()


# -- django-tasks-redis ------------------------------------------------------------


def _redis_overrides(run: str) -> dict[str, Any]:
    from tests.support import tasks_redis_settings

    backend = tasks_redis_settings.TASKS["default"]
    options = {**backend["OPTIONS"], "REDIS_URL": settings.REDIS_URL, "REDIS_KEY_PREFIX": run}
    return {"TASKS": {"default": {**backend, "OPTIONS": options}}}


def _redis_env(run: str) -> dict[str, str]:
    return {"PROGRESS_TASKS_REDIS_URL": settings.REDIS_URL, "PROGRESS_TASKS_REDIS_PREFIX": run}


def _redis_flush(run: str) -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{run}*"):
        client.delete(key)


BACKENDS = [
    Backend(
        "huey",
        "tests.support.huey_settings",
        _django("run_huey", "--workers", "2", "-k", "thread"),
        "Huey consumer started",
        _huey_env,
        _huey_overrides,
        _huey_flush,
    ),
    Backend(
        "django-tasks-rq",
        "tests.support.tasks_rq_settings",
        _django("rqworker", "--job-class", "django_tasks_rq.Job", "default"),
        "Listening on",
        _rq_env,
        _rq_overrides,
        _rq_flush,
    ),
    Backend(
        "django-tasks-redis",
        "tests.support.tasks_redis_settings",
        _django("run_redis_tasks", "--continuous", "--interval", "0.05"),
        "Starting Redis task worker",
        _redis_env,
        _redis_overrides,
        _redis_flush,
    ),
]


#: (backend, what it needs): django-tasks-redis is built on django.tasks (Django 6).
NEEDS = {
    "huey": ("huey",),
    "django-tasks-rq": ("django_tasks_rq", "django_rq"),
    "django-tasks-redis": ("django.tasks", "django_tasks_redis"),
}


def _params() -> list[Any]:
    params = []
    for backend in BACKENDS:
        why = None
        for module in NEEDS[backend.name]:
            if why is None and _spec_missing(module):
                why = f"{backend.name} needs {module}, which this environment lacks"
        marks = [pytest.mark.skip(reason=why)] if why else []
        params.append(pytest.param(backend, id=backend.name, marks=marks))
    return params


def _spec_missing(module: str) -> bool:
    try:
        return find_spec(module) is None
    except ModuleNotFoundError:  # its parent package is missing
        return True


@pytest.fixture(scope="module", params=_params())
def consumer(request: pytest.FixtureRequest) -> Iterator[WorkerProcess]:
    """A real worker of the backend, with the test process on the same queue
    (this run's own: a Huey name, a key prefix, or the progress database's RQ queue)."""
    require_redis()
    backend: Backend = request.param
    run = f"progress-{backend.name}-{secrets.token_hex(6)}"
    env = {
        "DJANGO_SETTINGS_MODULE": backend.settings_module,
        # Fast liveness: the last test kills it.
        "PROGRESS_TEST_UI": json.dumps(FAST_LIVENESS),
        **backend.env(run),
    }
    with ExitStack() as stack:
        overrides = override_settings(PROGRESS_UI=UI, **backend.overrides(run))
        stack.enter_context(overrides)
        stack.callback(backend.flush, run)
        yield stack.enter_context(running_process(backend.argv, env=env, ready=backend.ready))


def new_session() -> ProgressSession:
    return ProgressSession.create({"a": "A", "b": "B"})


def wait_for(
    session: ProgressSession,
    condition: Callable[[dict[str, Any]], bool],
    worker: WorkerProcess,
    timeout: float = WAIT,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        snap = dict(session.to_dict())
        if condition(snap):
            return snap
        if time.monotonic() > deadline:
            pytest.fail(f"not reached in {timeout}s: {snap}\n--- worker ---\n{worker.output()}")
        time.sleep(0.05)


def task(snap: dict[str, Any], task_id: str = "a") -> dict[str, Any]:
    return dict(snap["tasks"][task_id])


def result_status(result: Any, worker: WorkerProcess) -> Any:
    """The Django TaskResult once final (bounded)."""
    deadline = time.monotonic() + WAIT
    while True:
        result.refresh()
        if result.is_finished:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{result.id} still {result.status}:\n{worker.output()}")
        time.sleep(0.05)


def test_a_progress_task_runs_in_the_worker_and_reports_while_it_runs(
    consumer: WorkerProcess,
) -> None:
    session = new_session()
    result = session.enqueue("a", count_to, 5)
    snap = wait_for(session, lambda s: task(s)["status"] == "complete", consumer)
    assert task(snap)["current"] == task(snap)["total"] == 5
    final = result_status(result, consumer)
    assert final.status.name == "SUCCESSFUL"
    assert final.return_value == {"pid": consumer_pid(final), "count": 5}
    assert task(snap, "b")["status"] == "pending"

    # Progress arrives while the task runs (it waits, bounded, for the release).
    held = new_session()
    running = held.enqueue("a", wait_for_release, WAIT)
    snap = wait_for(held, lambda s: task(s)["current"] == 1, consumer)
    assert (task(snap)["status"], task(snap)["total"]) == ("running", 2)
    assert running.refresh() is None and running.status.name == "RUNNING"
    caches["redis"].set(release_key(held.session_id), True)
    wait_for(held, lambda s: task(s)["status"] == "complete", consumer)
    assert result_status(running, consumer).status.name == "SUCCESSFUL"


def consumer_pid(result: Any) -> int:
    """The worker's PID as the task reported it (a separate process from this one)."""
    pid = int(result.return_value["pid"])
    assert pid != os.getpid()
    return pid


@pytest.mark.parametrize(
    ("task_fn", "args", "message"),
    [(fail_visibly, ("Supplier feed returned 503",), "Supplier feed returned 503"),
     (fail_badly, (), GENERIC)],
)  # fmt: skip
def test_a_failure_shows_its_safe_message_and_the_queue_says_failed(
    consumer: WorkerProcess, task_fn: Any, args: tuple[Any, ...], message: str
) -> None:
    session = new_session()
    result = session.enqueue("a", task_fn, *args)
    snap = wait_for(session, lambda s: task(s)["status"] == "error", consumer)
    assert task(snap)["message"] == message
    assert "hunter2" not in json.dumps(snap)
    assert result_status(result, consumer).status.name == "FAILED"


def test_the_runner_runs_a_job_and_a_cancel_ends_it_as_a_success(
    consumer: WorkerProcess, request: pytest.FixtureRequest
) -> None:
    submit = get_runner("django_tasks")
    session = new_session()
    done = submit(session, "tests.support.jobs.count_job", {"rows": 3})
    wait_for(session, lambda s: task(s, "b")["status"] == "complete", consumer)
    assert result_status(done, consumer).return_value == "complete"

    slow = new_session()
    result = submit(slow, "tests.support.jobs.slow_job", {"seconds": WAIT})
    wait_for(slow, lambda s: "pid" in (task(s)["message"] or ""), consumer)
    cancelled_at = time.time()
    slow.cancel()
    final = result_status(result, consumer)
    stopped = caches["redis"].get(jobs.stopped_key(slow.session_id))
    print(f"{name_of(request)} (django tasks): cancel-to-stop {stopped - cancelled_at:.3f}s")
    # Django Tasks has no cancelled state: a success whose value says so.
    assert (final.status.name, final.return_value) == ("SUCCESSFUL", "cancelled")
    assert {t["status"] for t in slow.to_dict()["tasks"].values()} == {"cancelled"}


def test_a_cancelled_queued_job_never_runs(consumer: WorkerProcess) -> None:
    queued = new_session()
    queued.cancel()  # before the worker picks it up
    result = get_runner("django_tasks")(queued, "tests.support.jobs.count_job", {"rows": 4})
    final = result_status(result, consumer)
    assert (final.status.name, final.return_value) == ("SUCCESSFUL", "cancelled")
    assert [task(queued.to_dict(), t)["current"] for t in "ab"] == [None, None]


def test_a_killed_worker_turns_its_task_to_an_error(
    consumer: WorkerProcess, request: pytest.FixtureRequest
) -> None:
    """SIGKILL of the worker mid-task (last: it ends the backend's worker)."""
    with override_settings(PROGRESS_UI={**UI, **FAST_LIVENESS}):
        session = new_session()
        session.enqueue("a", wait_for_release, WAIT)
        snap = wait_for(session, lambda s: task(s)["current"] == 1, consumer)
        runner_pid = int(task(snap)["message"].rsplit(" ", 1)[1])
        killed_at = time.monotonic()
        if runner_pid != consumer.pid and os.getsid(runner_pid) == consumer.pid:
            # RQ's work horse (a child of this worker) leads a process group of
            # its own: a crash of the whole worker kills it too.
            os.kill(runner_pid, signal.SIGKILL)
        kill_process(consumer)
        snap = wait_for(session, lambda s: task(s)["status"] == "error", consumer, timeout=20)
        took = time.monotonic() - killed_at
        print(f"{name_of(request)} (django tasks): SIGKILL-to-error {took:.2f}s")
    assert task(snap)["message"] == WORKER_LOST


def name_of(request: pytest.FixtureRequest) -> str:
    backend: Backend = request.node.callspec.params["consumer"]
    return backend.name
