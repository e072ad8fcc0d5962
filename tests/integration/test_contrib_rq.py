"""progress_ui.contrib.rq: progress tasks on a real ``rq worker`` (and django-rq's
``rqworker``) process.

The worker takes its jobs from Redis (``tests/support/rq_jobs.py``: database 12
by default) on a queue of this test run's own and reports to the Redis progress
cache (``REDIS_URL``), which this process reads. Every wait is bounded; every
worker is stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("rq")

from django.core.cache import caches
from django.test import override_settings
from redis import Redis
from rq import Queue, Retry
from rq.job import Job, JobStatus

from progress_ui import ProgressSession, UnknownTaskError
from progress_ui.contrib import rq as contrib_rq
from progress_ui.contrib.rq import ProgressTask, progress_task
from progress_ui.contrib.threads import QueueUnavailable, get_runner
from progress_ui.core.validation import log_id
from progress_ui.engine.work import TaskProgress
from tests.conftest import require_redis
from tests.support import rq_jobs
from tests.support.workers import WorkerProcess, kill_process, running_process

GENERIC = "Something went wrong."
WORKER_LOST = "The worker stopped responding."
#: Every wait in this module is bounded by this many seconds.
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


def job_status(job_id: str, worker: WorkerProcess, wanted: set[str]) -> str:
    """The job's RQ status once it is one of ``wanted`` (bounded)."""
    deadline = time.monotonic() + WAIT
    while True:
        status = Job.fetch(job_id, connection=rq_jobs.queue.connection).get_status()
        if status in wanted:
            return str(status.value if isinstance(status, JobStatus) else status)
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {status}:\n{worker.output()}")
        time.sleep(0.05)


def wait_logged(worker: WorkerProcess, text: str) -> str:
    deadline = time.monotonic() + WAIT
    while text not in (output := worker.output(limit=1_000_000)):
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not logged:\n{worker.output()}")
        time.sleep(0.05)
    return output


# -- without a worker --------------------------------------------------------------


@pytest.fixture
def redis_progress() -> Iterator[None]:
    """Progress in the Redis cache, as the workers' (no clear: sessions are unique)."""
    require_redis()
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60}):
        yield


@pytest.fixture
def idle_queue() -> Iterator[Queue]:
    """A queue no worker consumes."""
    require_redis()
    queue = Queue(f"{rq_jobs.QUEUE_NAME}-idle", connection=Redis.from_url(rq_jobs.BROKER_URL))
    yield queue
    queue.empty()


def test_decorator_makes_a_progress_task_named_after_the_work() -> None:
    assert isinstance(rq_jobs.count_to, ProgressTask)
    assert rq_jobs.count_to.path == "tests.support.rq_jobs.count_to"
    assert rq_jobs.count_to.queue is rq_jobs.queue

    with pytest.raises(TypeError):
        progress_task(42)  # type: ignore[call-overload]


def test_enqueue_sends_the_ids_then_the_work_arguments(
    redis_progress: None, idle_queue: Queue
) -> None:
    session = new_session()
    job = session.enqueue(TASK, rq_jobs.count_to.with_options(queue=idle_queue), 3, 0.1, "k")
    assert isinstance(job, Job)
    assert job.func_name == "tests.support.rq_jobs.count_to"
    assert job.args == (session.session_id, TASK, 3, 0.1, "k")
    assert idle_queue.job_ids == [job.id]

    with pytest.raises(UnknownTaskError):
        session.enqueue("nope", rq_jobs.count_to.with_options(queue=idle_queue), 1, 0.0)
    assert idle_queue.count == 1
    assert task_state(session)["status"] == "pending"


def test_a_queue_that_cannot_be_reached_raises_queue_unavailable(redis_progress: None) -> None:
    down = Queue("down", connection=Redis(port=9, socket_connect_timeout=0.5))
    session = new_session()
    with pytest.raises(QueueUnavailable):
        session.enqueue(TASK, rq_jobs.count_to.with_options(queue=down), 1, 0.0)


def test_a_named_queue_missing_from_rq_queues_is_a_clear_error() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(RQ_QUEUES={}), pytest.raises(ImproperlyConfigured, match="RQ_QUEUES"):
        contrib_rq.get_queue("nowhere")


def test_called_directly_it_runs_the_work_here(redis_progress: None) -> None:
    session = new_session()
    assert rq_jobs.count_to(session.session_id, TASK, 2, 0.0) == 2
    deadline = time.monotonic() + 5
    while task_state(session)["status"] != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # A task in error (its worker was lost) run again, as RQ does with such a job:
    # left alone, without a traceback.
    session.error("other", "The worker stopped responding.")
    assert rq_jobs.count_to(session.session_id, "other", 2, 0.0) is None
    assert task_state(session, "other")["status"] == "error"


# -- against a real worker ---------------------------------------------------------


def rq_worker_command(queue: str) -> list[str]:
    """``rq worker`` on ``queue``; ``-c`` imports the jobs module (which sets Django
    up) once in the worker, so that each forked work horse has it."""
    return [
        sys.executable, "-m", "rq.cli", "worker", "--url", rq_jobs.BROKER_URL,
        "-c", "tests.support.rq_jobs", "--logging_level", "INFO", "--with-scheduler", queue,
    ]  # fmt: skip


def rqworker_command(queue: str) -> list[str]:
    """django-rq's ``manage.py rqworker`` on ``queue``."""
    return [sys.executable, "-m", "django", "rqworker", queue]


def worker_env(queue: str, ui: dict[str, Any] | None = None) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "tests.support.rq_settings",
        "PROGRESS_RQ_QUEUE": queue,
        "PROGRESS_RQ_URL": rq_jobs.BROKER_URL,
        "PROGRESS_TEST_UI": json.dumps(ui or {}),
    }


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerProcess]:
    """A real ``rq worker`` on this run's queue, stopped by PID afterwards."""
    require_redis()
    queue = rq_jobs.QUEUE_NAME
    with running_process(
        rq_worker_command(queue), env=worker_env(queue), ready="Listening on", timeout=60
    ) as proc:
        yield proc
    assert not proc.is_running()


@pytest.mark.slow
@pytest.mark.worker
def test_progress_and_completion_reach_this_process(
    worker: WorkerProcess, redis_progress: None
) -> None:
    session = new_session()
    job = session.enqueue(TASK, rq_jobs.count_to, 5, 0.2)
    seen = watch(session, finished, worker)
    assert seen[-1][0] == "complete", seen
    assert [s for s in seen if s[0] == "running" and 0 < (s[2] or 0) < 5], seen
    pid = int(seen[-1][1].removeprefix("pid "))
    assert pid not in (os.getpid(), worker.pid)  # a work horse of the worker
    assert job_status(job.id, worker, {JobStatus.FINISHED, JobStatus.FAILED}) == "finished"
    assert session.to_dict()["tasks"]["other"]["status"] == "pending"


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.parametrize(
    ("kind", "message"), [("progress", "Supplier feed returned 503"), ("other", GENERIC)]
)
def test_a_failure_shows_its_safe_message_and_fails_the_job(
    worker: WorkerProcess, redis_progress: None, kind: str, message: str
) -> None:
    session = new_session()
    job = session.enqueue(TASK, rq_jobs.fail_with, kind)
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("error", message), seen
    assert rq_jobs.SECRET not in json.dumps(session.to_dict())
    assert job_status(job.id, worker, {JobStatus.FINISHED, JobStatus.FAILED}) == "failed"


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.parametrize("job", ["flaky", "async_flaky"])
def test_a_retried_job_shows_retrying_then_completes(
    worker: WorkerProcess, redis_progress: None, job: str
) -> None:
    session = new_session()
    key = f"count:{session.session_id}"
    task = getattr(rq_jobs, job)
    # An interval (run by the worker's scheduler) keeps each "Retrying…" up long
    # enough for the 20 ms watcher; an immediate retry clears it within a fork.
    session.enqueue(TASK, task.with_options(retry=Retry(max=3, interval=1)), 2, key)
    seen = watch(session, finished, worker)
    assert seen[-1][0] == "complete", seen
    assert not any(status == "error" for status, _, _ in seen), seen
    messages = [message for _, message, _ in seen]
    assert "Retrying (attempt 2 of 4)…" in messages, seen
    assert "Retrying (attempt 3 of 4)…" in messages, seen
    assert seen[-1][1] == "", seen  # the last attempt cleared the retry message
    assert caches[rq_jobs.MARKS].get(key) == 3


@pytest.mark.slow
@pytest.mark.worker
def test_retries_exhausted_show_the_error(worker: WorkerProcess, redis_progress: None) -> None:
    session = new_session()
    key = f"count:{session.session_id}"
    session.enqueue(TASK, rq_jobs.flaky.with_options(retry=Retry(max=1)), 5, key)
    seen = watch(session, finished, worker)
    assert seen[-1][:2] == ("error", "Supplier feed returned 503"), seen
    assert "Retrying (attempt 2 of 2)…" in [m for _, m, _ in seen], seen
    assert caches[rq_jobs.MARKS].get(key) == 2


@pytest.mark.slow
@pytest.mark.worker
def test_cancel_running_and_queued_jobs(worker: WorkerProcess, redis_progress: None) -> None:
    """The worker runs one job at a time: a second job waits in the queue. Its
    cancel cancels it in RQ (it never runs); the running job stops at its next
    step and RQ records it STOPPED, with one INFO line of ours, no traceback."""
    running, queued = new_session(), new_session()
    mark_key = f"ran:{queued.session_id}"
    first = running.enqueue(TASK, rq_jobs.wait_until_cancelled, WAIT)
    watch(running, lambda task: "pid" in (task["message"] or ""), worker)
    second = queued.enqueue(TASK, rq_jobs.wait_until_cancelled, WAIT, mark_key)

    queued.cancel(TASK)
    assert job_status(second.id, worker, {JobStatus.CANCELED}) == "canceled"

    logged_before = len(worker.output(limit=1_000_000))
    cancelled_at = time.monotonic()
    running.cancel(TASK)
    assert job_status(first.id, worker, {JobStatus.STOPPED}) == "stopped"
    stopped_after = time.monotonic() - cancelled_at
    print(f"rq: cancel-to-stop (RQ STOPPED) {stopped_after:.2f}s")
    ours = f"progress_ui: task '{TASK}' of session {log_id(running.session_id)} stopped"
    output = wait_logged(worker, ours)[logged_before:]
    print("rq: cancelled job's lines:")
    for text in output.splitlines():
        print("   ", text)
    assert "Traceback" not in output
    assert "TaskCancelled" not in output

    # The worker goes on: a job after both completes, and the queued one never ran.
    after = new_session()
    after.enqueue(TASK, rq_jobs.count_to, 1, 0.0)
    assert watch(after, finished, worker)[-1][0] == "complete"
    assert caches[rq_jobs.MARKS].get(mark_key) is None
    assert task_state(queued)["status"] == task_state(running)["status"] == "cancelled"


@pytest.fixture
def rq_runner_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The "rq" runner on this run's queue (through django-rq's RQ_QUEUES)."""
    queues = {rq_jobs.QUEUE_NAME: {"URL": rq_jobs.BROKER_URL}}
    monkeypatch.setattr(contrib_rq, "RUNNER_QUEUE", rq_jobs.QUEUE_NAME)
    with override_settings(RQ_QUEUES=queues):
        yield


@pytest.mark.slow
@pytest.mark.worker
def test_the_rq_runner_runs_a_job_and_stops_it_on_cancel(
    worker: WorkerProcess, redis_progress: None, rq_runner_queue: None
) -> None:
    submit = get_runner("rq")
    session = new_session()
    done = submit(session, "tests.support.jobs.count_job", {"rows": 4})
    watch(session, lambda task: task["status"] == "complete", worker, task_id="other")
    for task in session.to_dict()["tasks"].values():
        assert task["current"] == task["total"] == 4
    assert job_status(done.id, worker, {JobStatus.FINISHED, JobStatus.FAILED}) == "finished"
    # An async def job runs the same way.
    both = new_session()
    done = submit(both, "tests.support.async_jobs.async_job", {"rows_per_task": 2})
    watch(both, lambda task: task["status"] == "complete", worker, task_id="other")
    for task in both.to_dict()["tasks"].values():
        assert task["current"] == task["total"] == 2
    assert job_status(done.id, worker, {JobStatus.FINISHED, JobStatus.FAILED}) == "finished"

    slow, waiting = new_session(), new_session()
    job = submit(slow, "tests.support.jobs.slow_job", {"seconds": WAIT})
    watch(slow, lambda task: "pid" in (task["message"] or ""), worker)
    # Queued behind it: a cancel of one of its tasks cancels the job, so all of them.
    queued = submit(waiting, "tests.support.jobs.count_job", {"rows": 2})
    waiting.cancel(TASK)
    assert job_status(queued.id, worker, {JobStatus.CANCELED}) == "canceled"
    assert {t["status"] for t in waiting.to_dict()["tasks"].values()} == {"cancelled"}

    slow.cancel()
    assert job_status(job.id, worker, {JobStatus.STOPPED, JobStatus.FAILED}) == "stopped"
    assert {t["status"] for t in slow.to_dict()["tasks"].values()} == {"cancelled"}


def kill_pid(pid: int) -> None:
    """SIGKILL a work horse: a child of a worker started here, in a process group
    of its own (RQ's), so that killing the worker's group does not reach it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.parametrize(
    ("command", "what"),
    [
        (rq_worker_command, "worker and horse"),
        (rqworker_command, "worker and horse"),
        (rq_worker_command, "horse"),
    ],
)
def test_a_killed_worker_turns_its_task_to_an_error(
    redis_progress: None, command: Callable[[str], list[str]], what: str
) -> None:
    """SIGKILL of the worker and its work horse (a lost machine), or of the horse
    alone (the OOM killer's pick): liveness turns the bar to an error. Also:
    django-rq's ``rqworker`` runs jobs."""
    queue = f"{rq_jobs.QUEUE_NAME}-loss-{secrets.token_hex(3)}"
    ui = {"CACHE_ALIAS": "redis", "MAX_STREAM_DURATION": 60, **FAST_LIVENESS}
    loss_queue = Queue(queue, connection=Redis.from_url(rq_jobs.BROKER_URL))
    with (
        override_settings(PROGRESS_UI=ui),
        running_process(
            command(queue), env=worker_env(queue, FAST_LIVENESS), ready="Listening on", timeout=60
        ) as process,
    ):
        warm = new_session()
        warm.enqueue(TASK, rq_jobs.count_to.with_options(queue=loss_queue), 1, 0.0)
        assert watch(warm, finished, process)[-1][0] == "complete"

        session = new_session()
        job = session.enqueue(TASK, rq_jobs.count_to.with_options(queue=loss_queue), 200, 0.1)
        seen = watch(session, lambda task: (task["current"] or 0) >= 2, process)
        horse = int(seen[-1][1].removeprefix("pid "))
        killed_at = time.monotonic()
        kill_pid(horse)
        if what != "horse":
            kill_process(process)
        seen = watch(session, finished, process, timeout=20)
        took = time.monotonic() - killed_at
        print(f"rq ({command.__name__}, {what}): SIGKILL-to-error {took:.2f}s")
        if what == "horse":  # the worker lives on, and RQ records the failure
            assert job_status(job.id, process, {JobStatus.FAILED}) == "failed"
    loss_queue.empty()
    assert seen[-1][:2] == ("error", WORKER_LOST), seen


def test_work_signature_is_kept() -> None:
    @progress_task(queue=rq_jobs.queue)
    def local(progress: TaskProgress, n: int) -> int:
        return n

    assert local.work.__name__ == "local"
