"""progress_ui.contrib.celery: progress tasks on a real ``celery worker`` process.

The worker (``tests/support/celery_app.py``, prefork with two children) takes its
messages from Redis database 14 on a queue of this test run's own and reports to
the Redis progress cache (database 15), which this process reads. The first
tests need neither: they check the decorator and enqueueing with the broker
call mocked, and run tasks eagerly (``apply()``) in this process.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

pytest.importorskip("celery")

from celery import Celery
from celery import uuid as celery_uuid
from celery.result import AsyncResult
from django.core.cache import caches
from django.test import Client, override_settings
from django.urls import include, path
from django.views.generic import TemplateView

from progress_ui import ProgressError, ProgressSession, UnknownTaskError
from progress_ui.contrib.celery import ProgressTask, progress_task
from progress_ui.contrib.threads import get_runner
from progress_ui.engine.work import TaskProgress
from progress_ui.mixins import StartProgressMixin
from tests.conftest import require_redis
from tests.support import celery_app as capp
from tests.support.workers import (
    WorkerProcess,
    kill_process,
    running_process,
    start_process,
    stop_process,
)

GENERIC = "Something went wrong."
#: Every wait in this module is bounded by this many seconds.
WAIT = 30.0
TASK = "job"


def new_session() -> ProgressSession:
    return ProgressSession.create({TASK: "A job", "other": "Another job"})


def task_state(session: ProgressSession) -> dict[str, Any]:
    return dict(session.to_dict()["tasks"][TASK])


def settled_state(session: ProgressSession, timeout: float = 5.0) -> dict[str, Any]:
    """The task once COMPLETE or ERROR (COMPLETING reads as running for 0.3 s)."""
    deadline = time.monotonic() + timeout
    while (state := task_state(session))["status"] not in ("complete", "error", "cancelled"):
        assert time.monotonic() < deadline, state
        time.sleep(0.02)
    return state


# -- without a worker ------------------------------------------------------------------


@pytest.fixture
def locmem_progress() -> Iterator[None]:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "locmem"}):
        caches["locmem"].clear()
        yield


def test_decorator_makes_a_celery_task_named_after_the_work() -> None:
    assert isinstance(capp.count_to, ProgressTask)
    assert capp.count_to.name == "tests.support.celery_app.count_to"
    assert capp.count_to.name in capp.app.tasks
    assert capp.flaky.max_retries == 3
    assert getattr(capp.unavailable, "autoretry_for", None) == (ProgressError,)


def test_bare_decorator_makes_a_shared_task() -> None:
    @progress_task
    def shared_work(progress: TaskProgress, n: int) -> int:
        return n

    assert isinstance(shared_work, ProgressTask)
    assert shared_work.name.endswith("shared_work")
    assert shared_work.progress_bind is False


def test_enqueue_sends_the_ids_then_the_work_arguments(locmem_progress: None) -> None:
    session = new_session()
    with mock.patch.object(ProgressTask, "apply_async", autospec=True) as apply_async:
        apply_async.return_value.id = "celery-message-id"  # what Celery returns: a str
        result = session.enqueue(TASK, capp.count_to, 3, 0.1, mark_key="k")
    assert result is apply_async.return_value
    apply_async.assert_called_once_with(
        mock.ANY, args=(session.session_id, TASK, 3, 0.1), kwargs={"mark_key": "k"}
    )


def test_with_options_passes_apply_async_options(locmem_progress: None) -> None:
    session = new_session()
    with mock.patch.object(ProgressTask, "apply_async", autospec=True) as apply_async:
        apply_async.return_value.id = "celery-message-id"
        session.enqueue(TASK, capp.count_to.with_options(countdown=5, queue="q"), 3, 0.1)
    apply_async.assert_called_once_with(
        mock.ANY, args=(session.session_id, TASK, 3, 0.1), kwargs={}, countdown=5, queue="q"
    )


def test_unknown_task_id_raises_before_sending(locmem_progress: None) -> None:
    session = new_session()
    with mock.patch.object(ProgressTask, "apply_async", autospec=True) as apply_async:
        with pytest.raises(UnknownTaskError, match="nope"):
            session.enqueue("nope", capp.count_to, 3, 0.1)
        with pytest.raises(UnknownTaskError):
            capp.count_to.enqueue_progress(session, "nope", 3, 0.1)
        with pytest.raises(UnknownTaskError):
            session.enqueue("nope", capp.count_to.with_options(countdown=1), 3, 0.1)
    apply_async.assert_not_called()


def test_wrong_arguments_raise_in_the_caller(locmem_progress: None) -> None:
    """Celery's argument check sees the work's parameters after ``progress``."""
    session = new_session()
    with pytest.raises(TypeError):
        session.enqueue(TASK, capp.count_to, 3)  # delay missing
    with pytest.raises(TypeError):
        session.enqueue(TASK, capp.count_to, 3, 0.1, nope=1)
    with pytest.raises(TypeError):
        session.enqueue(TASK, capp.flaky, 1)  # bound: self and progress are not arguments
    assert task_state(session)["status"] == "pending"


def test_eager_run_completes(locmem_progress: None) -> None:
    session = new_session()
    result = capp.count_to.apply(args=(session.session_id, TASK, 2, 0.0))
    assert result.get() == 2
    state = settled_state(session)
    assert (state["status"], state["current"], state["total"]) == ("complete", 2, 2)
    assert state["message"] == f"pid {os.getpid()}"
    assert session.to_dict()["tasks"]["other"]["status"] == "pending"


def test_eager_failure_shows_the_safe_message(locmem_progress: None) -> None:
    session = new_session()
    capp.fail_with.apply(args=(session.session_id, TASK, "generic"))
    state = task_state(session)
    assert (state["status"], state["message"]) == ("error", GENERIC)
    assert capp.SECRET not in json.dumps(session.to_dict())


def test_eager_retries_then_complete(locmem_progress: None) -> None:
    session = new_session()
    seen: list[str] = []
    original = ProgressSession.update

    def spy(self: ProgressSession, task_id: str, **kw: Any) -> None:
        if kw.get("message"):
            seen.append(kw["message"])
        original(self, task_id, **kw)

    with mock.patch.object(ProgressSession, "update", spy):
        result = capp.flaky.apply(args=(session.session_id, TASK, 2, 0))
    assert result.get() == "done"
    assert seen == ["Retrying (attempt 2 of 4)…", "Retrying (attempt 3 of 4)…"]
    assert settled_state(session)["status"] == "complete"


@pytest.mark.redis
def test_eager_autoretry_exhausted_shows_the_error(locmem_progress: None) -> None:
    require_redis()  # the task counts its attempts there
    session = new_session()
    count_key = f"count:{session.session_id}"
    result = capp.unavailable.apply(args=(session.session_id, TASK, count_key))
    assert isinstance(result.result, ProgressError)
    state = task_state(session)
    assert (state["status"], state["message"]) == ("error", "Supplier feed returned 503")
    assert caches[capp.MARKS].get(count_key) == 3


def test_work_runs_when_the_session_is_gone(locmem_progress: None) -> None:
    gone = secrets.token_urlsafe(24)
    assert capp.count_to.apply(args=(gone, TASK, 1, 0.0)).get() == 1


def test_revoked_handler_marks_cancelled_and_expired(locmem_progress: None) -> None:
    session = new_session()
    request = mock.Mock(args=[session.session_id, TASK, 1, 0.0])
    capp.count_to.on_progress_revoked(request, terminated=False, expired=True)
    assert (task_state(session)["status"], task_state(session)["message"]) == (
        "cancelled",
        "Expired.",
    )
    other = new_session()
    request = mock.Mock(args=(other.session_id, TASK, 1, 0.0))
    capp.count_to.on_progress_revoked(request, terminated=False, expired=False)
    assert (task_state(other)["status"], task_state(other)["message"]) == (
        "cancelled",
        "Cancelled.",
    )
    # Not a progress task's arguments: ignored.
    capp.count_to.on_progress_revoked(mock.Mock(args=[1]), terminated=False, expired=False)


# -- against a real worker --------------------------------------------------------------


@dataclass
class CeleryWorker:
    process: WorkerProcess
    #: The worker's node name (``name@host``), for remote control commands.
    node: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.process.output()


@pytest.fixture(scope="module")
def worker() -> Iterator[CeleryWorker]:
    """A real ``celery worker`` on this run's queue, stopped by PID afterwards."""
    require_redis()
    name = f"progress-tests-{secrets.token_hex(4)}@%h"
    argv = [
        sys.executable, "-m", "celery", "-A", "tests.support.celery_app", "worker",
        "--pool=prefork", "--concurrency=2",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--queues", capp.QUEUE,
        "--hostname", name,
        "--loglevel=INFO",
    ]  # fmt: skip
    node = name.replace("%h", _hostname())

    def answers_ping(_: WorkerProcess) -> bool:
        return bool(capp.app.control.ping(destination=[node], timeout=0.5))

    env = {
        "DJANGO_SETTINGS_MODULE": "tests.support.settings_celery",
        "PROGRESS_CELERY_QUEUE": capp.QUEUE,
        "PROGRESS_CELERY_BROKER": capp.BROKER_URL,
        "PROGRESS_CELERY_RESULTS": capp.RESULTS_URL,
    }
    with running_process(argv, env=env, ready=answers_ping, timeout=60) as proc:
        yield CeleryWorker(proc, node)
    assert not proc.is_running()


def _hostname() -> str:
    import socket

    return socket.gethostname()


@pytest.fixture
def redis_progress() -> Iterator[None]:
    """Progress in the Redis cache, as the worker's (no clear: sessions are unique)."""
    require_redis()
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60}):
        yield


@pytest.fixture
def broker() -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(capp.BROKER_URL, socket_timeout=5)
    yield client
    client.close()


def watch(
    session: ProgressSession,
    until: Callable[[dict[str, Any]], bool],
    worker: CeleryWorker,
    timeout: float = WAIT,
) -> list[tuple[str, str, float | None]]:
    """Poll the task every 20 ms until ``until(task)``; returns the distinct
    (status, message, current) states seen. Fails with the worker's log after
    ``timeout`` seconds."""
    seen: list[tuple[str, str, float | None]] = []
    deadline = time.monotonic() + timeout
    while True:
        task = task_state(session)
        state = (task["status"], task["message"], task["current"])
        if not seen or seen[-1] != state:
            seen.append(state)
        if until(task):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(
                f"task state not reached in {timeout}s; seen: {seen}\n"
                f"--- worker output ---\n{worker.output()}"
            )
        time.sleep(0.02)


def finished(task: dict[str, Any]) -> bool:
    return task["status"] in ("complete", "error", "cancelled")


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


@pytest.mark.slow
@pytest.mark.redis
def test_progress_and_completion_reach_this_process(
    worker: CeleryWorker, redis_progress: None
) -> None:
    session = new_session()
    result = session.enqueue(TASK, capp.count_to, 5, 0.25)
    assert isinstance(result, AsyncResult)
    assert result.id
    seen = watch(session, finished, worker)
    assert seen[-1][0] == "complete", seen
    running = [s for s in seen if s[0] == "running" and s[2] is not None and 0 < s[2] < 5]
    assert running, f"no intermediate progress seen: {seen}"
    pid = int(seen[-1][1].removeprefix("pid "))
    assert pid != os.getpid()
    assert pid != worker.pid  # a prefork child ...
    if sys.platform == "linux":
        assert _parent_pid(pid) == worker.pid  # ... of the worker started here
    assert task_state(session)["current"] == 5
    assert session.to_dict()["tasks"]["other"]["status"] == "pending"


@pytest.mark.slow
@pytest.mark.redis
def test_progress_error_shows_its_message(worker: CeleryWorker, redis_progress: None) -> None:
    session = new_session()
    session.enqueue(TASK, capp.fail_with, "progress")
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("error", "Supplier feed returned 503"), seen


@pytest.mark.slow
@pytest.mark.redis
def test_other_exception_shows_the_generic_message(
    worker: CeleryWorker, redis_progress: None
) -> None:
    session = new_session()
    session.enqueue(TASK, capp.fail_with, "generic")
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("error", GENERIC), seen
    assert capp.SECRET not in json.dumps(session.to_dict())


@pytest.mark.slow
@pytest.mark.redis
def test_retried_task_shows_retrying_then_completes(
    worker: CeleryWorker, redis_progress: None
) -> None:
    session = new_session()
    session.enqueue(TASK, capp.flaky, 2, 0.5)
    seen = watch(session, finished, worker)
    assert seen[-1][0] == "complete", seen
    assert not any(status == "error" for status, _, _ in seen), seen
    messages = [message for _, message, _ in seen]
    assert "Retrying (attempt 2 of 4)…" in messages, seen
    assert "Retrying (attempt 3 of 4)…" in messages, seen
    assert messages.index("Retrying (attempt 2 of 4)…") < messages.index(
        "Retrying (attempt 3 of 4)…"
    )
    # The last attempt cleared the retry message when it started.
    assert seen[-1][1] == "", seen


@pytest.mark.slow
@pytest.mark.redis
def test_async_work_runs_and_retries_in_the_worker(
    worker: CeleryWorker, redis_progress: None
) -> None:
    """``async def`` work in a real prefork child: awaited progress, and a retry
    raised while awaited leaves the task RUNNING as a plain function's does."""
    session = new_session()
    session.enqueue(TASK, capp.async_flaky, 1, 0.3)
    seen = watch(session, finished, worker)
    assert seen[-1][0] == "complete", seen
    assert not any(status == "error" for status, _, _ in seen), seen
    assert any(message == "Retrying (attempt 2 of 4)…" for _, message, _ in seen), seen
    pid = int(seen[-1][1].removeprefix("pid "))
    assert pid != os.getpid()
    assert task_state(session)["current"] == 1


@pytest.mark.slow
@pytest.mark.redis
def test_retries_exhausted_show_the_error(worker: CeleryWorker, redis_progress: None) -> None:
    """autoretry_for: RUNNING through the retries, ERROR with the message at the end."""
    session = new_session()
    count_key = f"count:{session.session_id}"
    session.enqueue(TASK, capp.unavailable, count_key)
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("error", "Supplier feed returned 503"), seen
    assert not any(status == "error" for status, _, _ in seen[:-1]), seen
    messages = [message for _, message, _ in seen]
    assert "Retrying (attempt 2 of 3)…" in messages, seen
    assert "Retrying (attempt 3 of 3)…" in messages, seen
    assert caches[capp.MARKS].get(count_key) == 3  # max_retries=2: three attempts


@pytest.mark.slow
@pytest.mark.redis
def test_bound_retry_beyond_max_retries_fails(worker: CeleryWorker, redis_progress: None) -> None:
    session = new_session()
    session.enqueue(TASK, capp.flaky, 10, 0.2)
    seen = watch(session, finished, worker)
    # MaxRetriesExceededError is not a ProgressError: the generic message.
    assert seen[-1][:2] == ("error", GENERIC), seen
    assert any(message == "Retrying (attempt 4 of 4)…" for _, message, _ in seen), seen


@pytest.mark.slow
@pytest.mark.redis
def test_unknown_task_id_sends_nothing(redis_progress: None, broker: Any) -> None:
    """A queue no worker consumes: the rejected call leaves it empty, a valid one not."""
    idle = f"{capp.QUEUE}-idle"
    session = new_session()
    broker.delete(idle)
    try:
        with pytest.raises(UnknownTaskError):
            session.enqueue("nope", capp.count_to.with_options(queue=idle), 1, 0.0)
        assert broker.llen(idle) == 0
        session.enqueue(TASK, capp.count_to.with_options(queue=idle), 1, 0.0)
        assert broker.llen(idle) == 1
    finally:
        broker.delete(idle)
    assert task_state(session)["status"] == "pending"


@pytest.mark.slow
@pytest.mark.redis
def test_task_revoked_before_it_was_sent_never_runs(
    worker: CeleryWorker, redis_progress: None
) -> None:
    session = new_session()
    mark_key = f"ran:{session.session_id}"
    celery_id = celery_uuid()
    node = worker.node
    replies = capp.app.control.revoke(celery_id, reply=True, timeout=5, destination=[node])
    assert replies, "the worker did not acknowledge the revoke"
    session.enqueue(TASK, capp.count_to.with_options(task_id=celery_id), 1, 0.0, mark_key)
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("cancelled", "Cancelled."), seen
    assert all(status == "pending" for status, _, _ in seen[:-1]), seen
    assert caches[capp.MARKS].get(mark_key) is None


@pytest.mark.slow
@pytest.mark.redis
def test_task_revoked_while_waiting_for_its_eta_never_runs(
    worker: CeleryWorker, redis_progress: None
) -> None:
    session = new_session()
    mark_key = f"ran:{session.session_id}"
    call = capp.count_to.with_options(countdown=2)
    result = call.enqueue_progress(session, TASK, 1, 0.0, mark_key)
    node = worker.node
    replies = capp.app.control.revoke(result.id, reply=True, timeout=5, destination=[node])
    assert replies
    assert task_state(session)["status"] == "pending"
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("cancelled", "Cancelled."), seen
    assert caches[capp.MARKS].get(mark_key) is None


@pytest.mark.slow
@pytest.mark.redis
def test_task_expired_before_it_ran_shows_expired(
    worker: CeleryWorker, redis_progress: None
) -> None:
    session = new_session()
    mark_key = f"ran:{session.session_id}"
    session.enqueue(TASK, capp.count_to.with_options(countdown=1.5, expires=0.5), 1, 0.0, mark_key)
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("cancelled", "Expired."), seen
    assert caches[capp.MARKS].get(mark_key) is None


#: A reader that finds the task's process gone marks it so (progress_ui.engine.liveness).
WORKER_LOST = "The worker stopped responding."


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize(
    ("signal", "messages"),
    [
        # The worker's main process marks it "Cancelled." (task_revoked); a
        # reader that notices the killed child first marks it lost.
        ("SIGKILL", {WORKER_LOST}),
        # The child's shutdown handler (SystemExit: "Interrupted.") races with
        # the main process's revoke handler; the first write wins.
        ("SIGTERM", {"Interrupted."}),
    ],
)
def test_running_task_terminated_stops(
    worker: CeleryWorker, redis_progress: None, signal: str, messages: set[str]
) -> None:
    session = new_session()
    result = capp.count_to.enqueue_progress(session, TASK, 100, 0.1)
    watch(session, lambda task: (task["current"] or 0) >= 2, worker)
    replies = capp.app.control.revoke(
        result.id, terminate=True, signal=signal, reply=True, timeout=5, destination=[worker.node]
    )
    assert replies
    seen = watch(session, finished, worker)
    # Cancelled by the revoke handler, or an error written by whoever came first.
    assert seen[-1][:2] in {("cancelled", "Cancelled."), *(("error", m) for m in messages)}, seen
    stopped_at = task_state(session)["current"]
    time.sleep(0.5)
    assert task_state(session)["current"] == stopped_at < 100
    # The worker replaced its child and still works.
    again = new_session()
    again.enqueue(TASK, capp.count_to, 1, 0.0)
    assert watch(again, finished, worker)[-1][0] == "complete"


# -- the view mixins' "celery" runner -----------------------------------------------


@pytest.fixture
def current_test_app() -> Iterator[None]:
    """The tests' Celery app as the current one, as a project's own app is (the
    runner's shared task sends through the current app)."""
    from celery import _state

    previous = _state.get_current_app()
    capp.app.set_current()
    try:
        yield
    finally:
        previous.set_current()


@pytest.mark.slow
@pytest.mark.redis
def test_the_celery_runner_runs_a_job_in_the_worker(
    worker: CeleryWorker, redis_progress: None, current_test_app: None
) -> None:
    session = new_session()
    get_runner("celery")(session, "tests.support.jobs.count_job", {"rows": 4})
    seen = watch(session, lambda task: task["status"] == "complete", worker)
    assert seen[-1][0] == "complete", seen
    for task in session.to_dict()["tasks"].values():
        assert task["current"] == task["total"] == 4
        assert task["message"] != f"pid {os.getpid()}"


@pytest.mark.slow
@pytest.mark.redis
def test_the_celery_runner_runs_an_async_job_in_the_worker(
    worker: CeleryWorker, redis_progress: None, current_test_app: None
) -> None:
    session = new_session()
    get_runner("celery")(session, "tests.support.async_jobs.async_job", {"rows_per_task": 3})
    seen = watch(session, lambda task: task["status"] == "complete", worker)
    assert seen[-1][0] == "complete", seen
    for task in session.to_dict()["tasks"].values():
        assert task["current"] == task["total"] == 3
        assert not task["message"].startswith(f"pid {os.getpid()} ")


@pytest.mark.slow
@pytest.mark.redis
def test_cancelling_a_session_revokes_its_queued_message(
    worker: CeleryWorker, redis_progress: None, current_test_app: None
) -> None:
    session = new_session()
    mark_key = f"ran:{session.session_id}"
    result = capp.count_to.with_options(countdown=2).enqueue_progress(
        session, TASK, 1, 0.0, mark_key
    )
    session.cancel()  # what the Cancel button's view does
    deadline = time.monotonic() + WAIT
    while f"Discarding revoked task: {capp.count_to.name}[{result.id}]" not in worker.output():
        if time.monotonic() > deadline:
            pytest.fail(f"not revoked:\n{worker.output()}")
        time.sleep(0.1)
    time.sleep(2.5)  # past its countdown: it never ran
    assert caches[capp.MARKS].get(mark_key) is None
    assert task_state(session)["status"] == "cancelled"


FAST_LIVENESS = {"WORKER_BEAT_INTERVAL": 0.3, "WORKER_STALE_TIMEOUT": 0.6}


@pytest.mark.slow
@pytest.mark.redis
def test_a_killed_celery_worker_turns_its_task_to_an_error() -> None:
    """SIGKILL of the whole worker (main process and children), as an OOM kill or
    a lost machine: no revoke handler runs; liveness turns the bar to an error."""
    require_redis()
    queue = f"{capp.QUEUE}-loss"
    argv = [
        sys.executable, "-m", "celery", "-A", "tests.support.celery_app", "worker",
        "--pool=prefork", "--concurrency=1", "--without-gossip", "--without-mingle",
        "--without-heartbeat", "--queues", queue, "--loglevel=INFO",
    ]  # fmt: skip
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.support.settings_celery",
        "PROGRESS_CELERY_QUEUE": queue,
        "PROGRESS_TEST_UI": json.dumps(FAST_LIVENESS),
    }
    ui = {"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60, **FAST_LIVENESS}
    with (
        override_settings(PROGRESS_UI=ui),
        running_process(argv, env=env, ready="ready", timeout=60) as process,
    ):
        node = CeleryWorker(process, "")
        session = new_session()
        capp.count_to.with_options(queue=queue).enqueue_progress(session, TASK, 200, 0.1)
        watch(session, lambda task: (task["current"] or 0) >= 2, node)
        kill_process(process)
        seen = watch(session, finished, node, timeout=20)
    assert seen[-1][:2] == ("error", WORKER_LOST), seen


# -- Celery records what the bar shows --------------------------------------------


def celery_state(celery_id: str, worker: CeleryWorker, timeout: float = WAIT) -> str:
    """The state the worker stored for a task once it is final (the module worker
    has a result backend); fails with the worker's log if it never is."""
    result = capp.results_app().AsyncResult(celery_id)
    deadline = time.monotonic() + timeout
    while (state := str(result.state)) not in ("SUCCESS", "FAILURE", "REVOKED"):
        if time.monotonic() > deadline:
            pytest.fail(f"{celery_id} still {state}:\n{worker.output()}")
        time.sleep(0.05)
    return state


def wait_logged(worker: CeleryWorker, text: str, timeout: float = WAIT) -> str:
    deadline = time.monotonic() + timeout
    while text not in (output := worker.process.output(limit=1_000_000)):
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not logged:\n{worker.output()}")
        time.sleep(0.05)
    return output


JOB = "progress_ui.run_progress_job"


@pytest.mark.slow
@pytest.mark.redis
def test_a_failed_job_is_a_failure_in_celery(
    worker: CeleryWorker, redis_progress: None, current_test_app: None
) -> None:
    visible, generic = new_session(), new_session()
    submit, job = get_runner("celery"), "tests.support.jobs.fail_job"
    shown = submit(visible, job, {"message": "Supplier 503"})
    hidden = submit(generic, job, {})

    assert celery_state(shown.id, worker) == celery_state(hidden.id, worker) == "FAILURE"
    # A ProgressError is an expected failure: one line, no traceback.
    wait_logged(worker, f"{JOB}[{shown.id}] raised expected: ProgressError('Supplier 503')")
    wait_logged(worker, f"{JOB}[{hidden.id}] raised unexpected: RuntimeError")
    assert {t["message"] for t in visible.to_dict()["tasks"].values()} == {"Supplier 503"}
    assert {t["message"] for t in generic.to_dict()["tasks"].values()} == {GENERIC}
    assert "hunter2" not in json.dumps(generic.to_dict())


@pytest.mark.slow
@pytest.mark.redis
def test_a_cancelled_job_is_revoked_in_celery(
    worker: CeleryWorker, redis_progress: None, current_test_app: None
) -> None:
    session = new_session()
    result = get_runner("celery")(session, "tests.support.jobs.slow_job", {"seconds": WAIT})
    watch(session, lambda task: "pid" in (task["message"] or ""), worker)
    session.cancel()

    assert celery_state(result.id, worker) == "REVOKED"
    output = wait_logged(worker, f"{JOB}[{result.id}] ignored")
    assert f"{JOB}[{result.id}] succeeded" not in output
    assert task_state(session)["status"] == "cancelled"


@pytest.mark.slow
@pytest.mark.redis
def test_a_cancelled_progress_task_is_revoked_in_celery_without_a_traceback(
    worker: CeleryWorker, redis_progress: None
) -> None:
    session = new_session()
    result = session.enqueue(TASK, capp.wait_until_cancelled, WAIT)
    watch(session, lambda task: "pid" in (task["message"] or ""), worker)
    session.cancel(TASK)

    assert celery_state(result.id, worker) == "REVOKED"
    output = wait_logged(worker, f"{capp.wait_until_cancelled.name}[{result.id}] ignored")
    assert "TaskCancelled" not in output
    assert task_state(session)["status"] == "cancelled"


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


#: The liveness window: a lost worker shows as an error within about this long.
STALE = 10.0


@pytest.mark.slow
@pytest.mark.redis
def test_a_task_or_job_the_worker_does_not_have_ends_in_error(
    worker: CeleryWorker, redis_progress: None, current_test_app: None, web_only_module: str
) -> None:
    def web_only(progress: TaskProgress) -> None:
        progress.update(percent=50)

    task = progress_task(app=capp.app, name=f"{web_only_module}.web_only")(web_only)
    session = new_session()
    started = time.monotonic()
    result = session.enqueue(TASK, task)
    seen = watch(session, finished, worker, timeout=STALE)
    print(f"unregistered task: error after {time.monotonic() - started:.2f}s")
    assert seen[-1][:2] == ("error", GENERIC), seen
    assert f"Received unregistered task of type '{task.name}'" in worker.output()
    assert task_state(session) and session.to_dict()["tasks"]["other"]["status"] == "pending"
    assert result.id

    # A job of the view mixins' runner: the worker has the runner's task, not the job.
    job_session = new_session()
    job = get_runner("celery")(job_session, f"{web_only_module}.count", {})
    deadline = time.monotonic() + STALE
    while {t["status"] for t in job_session.to_dict()["tasks"].values()} != {"error"}:
        assert time.monotonic() < deadline, f"{job_session.to_dict()}\n{worker.output()}"
        time.sleep(0.05)
    assert celery_state(job.id, worker) == "FAILURE"
    wait_logged(worker, f"{JOB}[{job.id}] raised unexpected: ModuleNotFoundError")


# -- starts are atomic: a broker that is down ----------------------------------------

#: Sessions the start view created, newest last.
CREATED: list[ProgressSession] = []


class CeleryStartView(StartProgressMixin, TemplateView):
    template_name = "progress_ui/page.html"
    progress_tasks = {"a": "A", "b": "B"}
    progress_job = "tests.support.jobs.count_job"
    progress_runner = "celery"

    def create_progress_session(self) -> ProgressSession:
        session = super().create_progress_session()
        CREATED.append(session)
        return session


urlpatterns = [
    path("start/", CeleryStartView.as_view()),
    path("progress/", include("progress_ui.urls")),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_start_while_the_broker_is_down_answers_503_and_ends_the_session(
    client: Client, locmem_progress: None
) -> None:
    from celery import _state

    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    broker = start_process([*argv, "--appendonly", "no"], ready="Ready to accept connections")
    app = Celery("tests.broker_down", broker=f"redis://127.0.0.1:{port}/0", set_as_current=False)
    previous = _state.get_current_app()
    app.set_current()
    try:
        assert client.post("/start/").status_code == 200  # sent while the broker is up
        kill_process(broker)

        started = time.monotonic()
        response = client.post("/start/")
        elapsed = time.monotonic() - started
    finally:
        previous.set_current()
        stop_process(broker)
        app.close()

    print(f"broker down: 503 after {elapsed:.2f}s")
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert response.content.decode() == StartProgressMixin.progress_start_error_message
    assert elapsed < WAIT
    snap = CREATED[-1].to_dict()
    assert snap["status"] == "error"
    assert {t["message"] for t in snap["tasks"].values()} == {
        StartProgressMixin.progress_start_error_message
    }


@pytest.mark.slow
@pytest.mark.redis
def test_a_job_revoked_before_it_ran_cancels_every_task_of_its_session(
    worker: CeleryWorker, redis_progress: None, current_test_app: None
) -> None:
    from progress_ui.contrib.celery import run_progress_job

    session = new_session()
    celery_id = celery_uuid()
    replies = capp.app.control.revoke(celery_id, reply=True, timeout=5, destination=[worker.node])
    assert replies, "the worker did not acknowledge the revoke"
    # What the "celery" runner sends, with a known id.
    reference = session.to_reference()
    run_progress_job.apply_async((reference, "tests.support.jobs.count_job", {}), task_id=celery_id)

    wait_logged(worker, f"Discarding revoked task: {JOB}[{celery_id}]")
    deadline = time.monotonic() + WAIT
    while any(t["status"] == "pending" for t in session.to_dict()["tasks"].values()):
        assert time.monotonic() < deadline, session.to_dict()
        time.sleep(0.05)
    tasks = session.to_dict()["tasks"].values()
    assert {(t["status"], t["message"]) for t in tasks} == {("cancelled", "Cancelled.")}
