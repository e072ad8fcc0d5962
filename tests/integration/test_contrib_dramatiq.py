"""progress_ui.contrib.dramatiq: progress actors on a real ``dramatiq`` worker process.

The worker (``tests/support/dramatiq_app.py``: one process, two threads) takes
its messages from Redis (database 11 by default) under a namespace of this test
run's own and reports to the Redis progress cache (``REDIS_URL``), which this
process reads. Every wait is bounded; every worker is stopped by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("dramatiq")

from django.core.cache import caches
from django.test import override_settings

# First: it sets the broker that progress_ui.contrib.dramatiq's runner actor uses.
from tests.support import dramatiq_app as app  # isort: skip

from progress_ui import ProgressError, ProgressSession, UnknownTaskError
from progress_ui.contrib.dramatiq import ProgressActor, ProgressMiddleware, run_progress_job
from progress_ui.contrib.threads import get_runner
from progress_ui.core.validation import log_id
from tests.conftest import require_redis
from tests.support.workers import WorkerProcess, kill_process, running_process

GENERIC = "Something went wrong."
WORKER_LOST = "The worker stopped responding."
WAIT = 30.0
TASK = "job"
FAST_LIVENESS = {"WORKER_BEAT_INTERVAL": 0.3, "WORKER_STALE_TIMEOUT": 0.6}

pytestmark = [pytest.mark.redis]


def new_session() -> ProgressSession:
    return ProgressSession.create({TASK: "A job", "other": "Another job"})


def task_state(session: ProgressSession, task_id: str = TASK) -> dict[str, Any]:
    return dict(session.to_dict()["tasks"][task_id])


def finished(task: dict[str, Any]) -> bool:
    return task["status"] in ("complete", "error", "cancelled")


def watch(
    session: ProgressSession,
    until: Callable[[dict[str, Any]], bool],
    worker: WorkerProcess,
    timeout: float = WAIT,
    task_id: str = TASK,
) -> list[tuple[str, str, float | None]]:
    """Poll the task every 20 ms until ``until(task)``; the distinct (status,
    message, current) states seen. Fails with the worker's log after ``timeout``."""
    seen: list[tuple[str, str, float | None]] = []
    deadline = time.monotonic() + timeout
    while True:
        task = task_state(session, task_id)
        state = (task["status"], task["message"], task["current"])
        if not seen or seen[-1] != state:
            seen.append(state)
        if until(task):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(
                f"not reached in {timeout}s; seen: {seen}\n--- worker ---\n{worker.output()}"
            )
        time.sleep(0.02)


def wait_logged(worker: WorkerProcess, text: str) -> str:
    deadline = time.monotonic() + WAIT
    while text not in (output := worker.output(limit=1_000_000)):
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not logged:\n{worker.output()}")
        time.sleep(0.05)
    return output


@pytest.fixture
def redis_progress() -> Iterator[None]:
    require_redis()
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60}):
        yield


# -- without a worker --------------------------------------------------------------


def test_decorator_makes_an_actor_with_the_middleware() -> None:
    assert run_progress_job.broker is app.broker
    assert isinstance(app.count_to, ProgressActor)
    assert app.count_to.actor_name == "count_to"
    assert app.broker.get_actor("count_to") is app.count_to
    names = [type(m).__name__ for m in app.broker.middleware]
    # Before Retries: its after_process_message runs after Retries' one.
    assert names.index("ProgressMiddleware") == names.index("Retries") - 1
    assert sum(isinstance(m, ProgressMiddleware) for m in app.broker.middleware) == 1


def test_enqueue_sends_the_ids_then_the_work_arguments(redis_progress: None) -> None:
    session = new_session()
    message = session.enqueue(TASK, app.count_to.with_options(delay=60_000), 3, 0.1, "k")
    assert message.args == (session.session_id, TASK, 3, 0.1, "k")
    assert message.options["eta"]
    with pytest.raises(UnknownTaskError):
        session.enqueue("nope", app.count_to, 1, 0.0)
    assert task_state(session)["status"] == "pending"


def test_called_directly_it_runs_the_work_here(redis_progress: None) -> None:
    session = new_session()
    app.count_to(session.session_id, TASK, 2, 0.0)
    deadline = time.monotonic() + 5
    while task_state(session)["status"] != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(ProgressError):
        app.fail_with(session.session_id, "other", "progress")
    # Delivered again (a lost worker's message): the ended task is left alone.
    assert app.count_to(session.session_id, "other", 2, 0.0) is None
    assert task_state(session, "other")["message"] == "Supplier feed returned 503"
    assert task_state(session, "other")["message"] == "Supplier feed returned 503"


# -- against a real worker ---------------------------------------------------------


def dramatiq_command() -> list[str]:
    return [
        sys.executable, "-m", "dramatiq", "tests.support.dramatiq_app",
        "--processes", "1", "--threads", "2",
    ]  # fmt: skip


def worker_env(namespace: str, ui: dict[str, Any] | None = None) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "tests.support.rq_settings",
        "PROGRESS_DRAMATIQ_NAMESPACE": namespace,
        "PROGRESS_DRAMATIQ_URL": app.BROKER_URL,
        "PROGRESS_TEST_UI": json.dumps(ui or {}),
    }


READY = "Worker process is ready for action."


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerProcess]:
    """A real ``dramatiq`` worker on this run's namespace, stopped by PID afterwards."""
    require_redis()
    with running_process(
        dramatiq_command(), env=worker_env(app.NAMESPACE), ready=READY, timeout=60
    ) as proc:
        yield proc
    assert not proc.is_running()
    app.broker.flush_all()


@pytest.mark.slow
@pytest.mark.worker
def test_progress_and_completion_reach_this_process(
    worker: WorkerProcess, redis_progress: None
) -> None:
    session = new_session()
    session.enqueue(TASK, app.count_to, 5, 0.2)
    seen = watch(session, finished, worker)
    assert seen[-1][0] == "complete", seen
    assert [s for s in seen if s[0] == "running" and 0 < (s[2] or 0) < 5], seen
    pid = int(seen[-1][1].removeprefix("pid "))
    assert pid not in (os.getpid(), worker.pid)  # a worker process of the worker


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.parametrize(
    ("kind", "message"), [("progress", "Supplier feed returned 503"), ("other", GENERIC)]
)
def test_a_failure_shows_its_safe_message(
    worker: WorkerProcess, redis_progress: None, kind: str, message: str
) -> None:
    session = new_session()
    sent = session.enqueue(TASK, app.fail_with, kind)
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("error", message), seen
    assert app.SECRET not in json.dumps(session.to_dict())
    if kind == "progress":  # an expected failure: one INFO line, no traceback
        wait_logged(worker, f"Failed to process message {sent} with expected exception")


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.parametrize("actor", ["flaky", "async_flaky"])
def test_a_retried_actor_shows_retrying_then_completes(
    worker: WorkerProcess, redis_progress: None, actor: str
) -> None:
    session = new_session()
    key = f"count:{session.session_id}"
    session.enqueue(TASK, getattr(app, actor), 2, key)
    seen = watch(session, finished, worker)
    assert seen[-1][0] == "complete", seen
    assert not any(status == "error" for status, _, _ in seen), seen
    messages = [message for _, message, _ in seen]
    assert "Retrying (attempt 2 of 4)…" in messages, seen
    assert "Retrying (attempt 3 of 4)…" in messages, seen
    assert seen[-1][1] == "", seen
    assert caches[app.MARKS].get(key) == 3


@pytest.mark.slow
@pytest.mark.worker
def test_retries_exhausted_show_the_error(worker: WorkerProcess, redis_progress: None) -> None:
    session = new_session()
    key = f"count:{session.session_id}"
    session.enqueue(TASK, app.unavailable, key)
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("error", "Supplier feed returned 503"), seen
    assert not any(status == "error" for status, _, _ in seen[:-1]), seen
    messages = [message for _, message, _ in seen]
    assert "Retrying (attempt 2 of 3)…" in messages, seen
    assert "Retrying (attempt 3 of 3)…" in messages, seen
    assert caches[app.MARKS].get(key) == 3


@pytest.mark.slow
@pytest.mark.worker
def test_cancel_queued_and_running(worker: WorkerProcess, redis_progress: None) -> None:
    """A message cancelled while it waits (its delay) never runs its work; a
    running one stops at its next step. Each is one INFO line, no traceback."""
    queued, running = new_session(), new_session()
    mark_key = f"ran:{queued.session_id}"
    queued.enqueue(TASK, app.wait_until_cancelled.with_options(delay=1500), WAIT, mark_key)
    queued.cancel(TASK)
    wait_logged(worker, f"of session {log_id(queued.session_id)} stopped after a cancel")
    assert caches[app.MARKS].get(mark_key) is None

    running.enqueue(TASK, app.wait_until_cancelled, WAIT)
    watch(running, lambda task: "pid" in (task["message"] or ""), worker)
    logged_before = len(worker.output(limit=1_000_000))
    cancelled_at = time.monotonic()
    running.cancel(TASK)
    ours = f"progress_ui: task '{TASK}' of session {log_id(running.session_id)} stopped"
    output = wait_logged(worker, ours)[logged_before:]
    print(f"dramatiq: cancel-to-stop (line logged) {time.monotonic() - cancelled_at:.2f}s")
    print("dramatiq: lines after the cancel:")
    for text in output.splitlines():
        print("   ", text)
    assert "Traceback" not in output
    assert "TaskCancelled" not in output
    assert task_state(running)["status"] == task_state(queued)["status"] == "cancelled"


@pytest.mark.slow
@pytest.mark.worker
def test_the_dramatiq_runner_runs_a_job(worker: WorkerProcess, redis_progress: None) -> None:
    session = new_session()
    get_runner("dramatiq")(session, "tests.support.jobs.count_job", {"rows": 4})
    watch(session, lambda task: task["status"] == "complete", worker, task_id="other")
    for task in session.to_dict()["tasks"].values():
        assert task["current"] == task["total"] == 4
    # An async def job runs the same way.
    both = new_session()
    get_runner("dramatiq")(both, "tests.support.async_jobs.async_job", {"rows_per_task": 2})
    watch(both, lambda task: task["status"] == "complete", worker, task_id="other")
    for task in both.to_dict()["tasks"].values():
        assert task["current"] == task["total"] == 2

    slow = new_session()
    get_runner("dramatiq")(slow, "tests.support.jobs.slow_job", {"seconds": WAIT})
    watch(slow, lambda task: "pid" in (task["message"] or ""), worker)
    slow.cancel()
    wait_logged(worker, f"of session {log_id(slow.session_id)} stopped after a cancel")
    assert {t["status"] for t in slow.to_dict()["tasks"].values()} == {"cancelled"}


@pytest.mark.slow
@pytest.mark.worker
def test_a_killed_worker_turns_its_task_to_an_error(redis_progress: None) -> None:
    """SIGKILL of the whole worker (main process and its worker process)."""
    namespace = f"{app.NAMESPACE}-loss-{secrets.token_hex(3)}"
    ui = {"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60, **FAST_LIVENESS}
    env = worker_env(namespace, FAST_LIVENESS)
    with (
        override_settings(PROGRESS_UI=ui),
        running_process(dramatiq_command(), env=env, ready=READY, timeout=60) as process,
    ):
        # This process sends to the loss namespace too.
        from dramatiq.brokers.redis import RedisBroker

        loss_broker = RedisBroker(url=app.BROKER_URL, namespace=namespace)
        session = new_session()
        message = app.count_to.message(session.session_id, TASK, 200, 0.1)
        loss_broker.enqueue(message)
        seen = watch(session, lambda task: (task["current"] or 0) >= 2, process)
        killed_at = time.monotonic()
        kill_process(process)
        seen = watch(session, finished, process, timeout=20)
        print(f"dramatiq: SIGKILL-to-error {time.monotonic() - killed_at:.2f}s")
        loss_broker.flush_all()
        loss_broker.close()
    assert seen[-1][:2] == ("error", WORKER_LOST), seen
