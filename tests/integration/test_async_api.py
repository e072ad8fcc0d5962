"""The async API (Django's ``a`` prefix): every write and lifecycle call on every
cache, the same snapshots as its sync twin, and no blocking of the event loop
on Redis (its asyncio client; no thread, no sync client)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from django.conf import settings
from django.test import RequestFactory, override_settings
from django.views.generic import TemplateView

from progress_ui import ProgressError, ProgressSession, TaskCancelled, TaskProgress
from progress_ui.contrib.threads import submit_to_threads
from progress_ui.engine import store, work
from progress_ui.engine.store.redis import RedisBackend
from progress_ui.mixins import StartProgressMixin
from progress_ui.signals import task_cancelled
from tests.integration.test_cache_outage import free_port, start_redis
from tests.support.async_jobs import async_job
from tests.support.workers import stop_process

TASKS = {"a": "A", "b": "B", "c": "C"}

#: What differs between two runs of the same calls: when they ran, and the rates.
_TIMING = ("started_at", "finished_at", "rate", "eta")


def comparable(snap: Any) -> Any:
    """A snapshot without the session id and the wall-clock fields."""
    tasks = {
        t: {k: v for k, v in task.items() if k not in _TIMING} for t, task in snap["tasks"].items()
    }
    return {**{k: v for k, v in snap.items() if k != "session_id"}, "tasks": tasks}


def settled(session: ProgressSession) -> Any:
    """The snapshot once completing bars are done (no read of the clock)."""
    later = time.time() + 3600
    return session.snapshot_of(session.read_state(), now=later)


async def asettled(session: ProgressSession) -> Any:
    later = time.time() + 3600
    return session.snapshot_of(await session.aread_state(), now=later)


# -- each a-method on every cache -------------------------------------------------------


async def test_acreate_astart_aupdate_acomplete(backend: str) -> None:
    session = await ProgressSession.acreate(TASKS, owner="user:1")
    copy = await ProgressSession.aget(session.session_id)
    assert copy is not None and copy.owner == "user:1"
    await session.astart("a")
    await session.aupdate("a", current=3, total=10, message="three", step=1, steps=2)
    snap = await session.aread()
    assert snap is not None
    task = snap["tasks"]["a"]
    assert (task["status"], task["percent"], task["message"], task["step"]) == (
        "running",
        30,
        "three",
        1,
    )
    await session.acomplete("a", "done")
    snap = await asettled(session)
    assert (snap["tasks"]["a"]["status"], snap["tasks"]["a"]["message"]) == ("complete", "done")


async def test_aerror_afail_acancel_adetach(backend: str) -> None:
    received: list[str] = []

    async def on_cancel(sender: Any, session: Any, task_id: str, **kwargs: Any) -> None:
        received.append(task_id)

    task_cancelled.connect(on_cancel)
    try:
        session = await ProgressSession.acreate(TASKS)
        await session.aupdate("a", percent=40)
        await session.aerror("a", "It broke.")
        await session.afail("b", ProgressError("Shown to users."))
        await session.astart("c")
        await session.adetach("c")
        state = await session.aread_state()
        assert state[1]["c"]["status"] == "running" and state[1]["c"].get("runner") is None
        assert await session.acancel() == ["c"]  # a and b had ended
        assert received == ["c"]
    finally:
        task_cancelled.disconnect(on_cancel)
    snap = await session.aread()
    assert snap is not None
    tasks = snap["tasks"]
    assert (tasks["a"]["status"], tasks["a"]["percent"], tasks["a"]["message"]) == (
        "error",
        40,
        "It broke.",
    )
    assert tasks["b"]["message"] == "Shown to users."
    assert tasks["c"]["status"] == "cancelled"
    with pytest.raises(TaskCancelled):
        await session.acheck_cancelled("c")
    with pytest.raises(TaskCancelled):
        await session.aupdate("c", percent=50)
    with pytest.raises(TaskCancelled):
        await session.astart("c")
    with pytest.raises(ValueError, match="already finished"):
        await session.astart("a")


async def test_aiterate_over_sync_and_async_iterables(backend: str) -> None:
    async def numbers() -> AsyncIterator[int]:
        for n in range(5):
            await asyncio.sleep(0)
            yield n

    session = await ProgressSession.acreate(TASKS)
    seen = [n async for n in session.aiterate("a", range(4), message="sync")]
    assert seen == [0, 1, 2, 3]
    seen = [n async for n in session.aiterate("b", numbers(), total=5)]
    assert seen == [0, 1, 2, 3, 4]
    # A break: the last count is written when the generator is closed.
    async with contextlib.aclosing(session.aiterate("c", range(10), complete=False)) as items:
        async for n in items:
            if n == 6:
                break
    snap = await asettled(session)
    tasks = snap["tasks"]
    assert (tasks["a"]["status"], tasks["a"]["current"], tasks["a"]["total"]) == ("complete", 4, 4)
    assert tasks["a"]["message"] == "sync"
    assert (tasks["b"]["status"], tasks["b"]["current"], tasks["b"]["total"]) == ("complete", 5, 5)
    assert (tasks["c"]["status"], tasks["c"]["current"], tasks["c"]["total"]) == ("running", 6, 10)


async def test_achild_rolls_up_and_adelete(backend: str) -> None:
    parent = await ProgressSession.acreate({"import": "Import"})
    child = await parent.achild("import", {"x": "X", "y": "Y"})
    await child.aupdate("x", percent=50)
    await child.acomplete("x")
    await child.acomplete("y")
    snap = await asettled(parent)
    assert snap["tasks"]["import"]["status"] == "complete"
    await child.adelete()
    assert await ProgressSession.aget(child.session_id) is None


async def test_aadd_sequential_awaits_async_work(backend: str) -> None:
    async def work(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    async def broken() -> None:
        raise ProgressError("No file.")

    session = await ProgressSession.acreate(TASKS)
    done = await session.aadd_sequential("a", work, 21)
    assert done.result == 42
    failed = await session.aadd_sequential("b", broken)
    assert isinstance(failed.exception, ProgressError)
    future: Future[int] = Future()
    tracked = await session.aadd_parallel("c", future)
    # As a worker thread would: the Future's callbacks (which store the task's
    # ending with blocking calls) run in the thread that completes it.
    await asyncio.to_thread(future.set_result, 7)
    assert tracked.result == 7
    snap = await asettled(session)
    assert [t["status"] for t in snap["tasks"].values()] == ["complete", "error", "complete"]
    assert snap["tasks"]["b"]["message"] == "No file."


async def test_task_progress_async_methods(backend: str) -> None:
    session = await ProgressSession.acreate(TASKS)
    progress = TaskProgress(session, "a")
    await progress.aupdate(current=1, total=4)
    assert [n async for n in progress.aiterate(range(4))] == [0, 1, 2, 3]
    await progress.acheck_cancelled()
    await session.acancel("a")
    with pytest.raises(TaskCancelled):
        await progress.acheck_cancelled()
    # A session that is gone: the work still runs, reporting nowhere.
    nowhere = TaskProgress(None, "a")
    await nowhere.aupdate(percent=5)
    assert [n async for n in nowhere.aiterate(range(2))] == [0, 1]


# -- the same calls, the same snapshots ---------------------------------------------------

#: (method, args, kwargs): a session's life, as the sync API spells it.
SCRIPT: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("start", ("a",), {}),
    ("update", ("a",), {"current": 3, "total": 10, "message": "three"}),
    ("update", ("a",), {"step": 2, "steps": 5, "step_name": "prices.csv"}),
    ("update", ("b",), {"percent": 40, "message": "b" * 5000}),
    ("complete", ("a",), {"message": "done"}),
    ("complete", ("a",), {}),  # twice: nothing
    ("error", ("b",), {"message": "<b>broke</b>"}),
    ("update", ("b",), {"percent": 90}),  # ignored once finished
    ("cancel", (), {}),
]


def run_sync(session: ProgressSession) -> list[Any]:
    seen = []
    for name, args, kwargs in SCRIPT:
        getattr(session, name)(*args, **kwargs)
        seen.append(comparable(session.to_dict()))
    return [*seen, comparable(settled(session))]


async def run_async(session: ProgressSession) -> list[Any]:
    seen = []
    for name, args, kwargs in SCRIPT:
        await getattr(session, f"a{name}")(*args, **kwargs)
        seen.append(comparable(await session.ato_dict()))
    return [*seen, comparable(await asettled(session))]


async def test_sync_and_async_calls_give_the_same_snapshots(backend: str) -> None:
    from asgiref.sync import sync_to_async

    with override_settings(PROGRESS_UI={"CACHE_ALIAS": backend, "COMPLETING_DURATION": 1800}):
        sync_session = await sync_to_async(ProgressSession.create)(TASKS)
        sync_seen = await sync_to_async(run_sync)(sync_session)
        async_session = await ProgressSession.acreate(TASKS)
        async_seen = await run_async(async_session)
    assert async_seen == sync_seen
    assert async_seen[-1]["tasks"]["c"]["status"] == "cancelled"
    # The completing bar, the capped message and the error are all there.
    assert async_seen[4]["tasks"]["a"]["status"] == "running"
    assert async_seen[-1]["tasks"]["a"]["status"] == "complete"


# -- the event loop is never blocked on Redis ------------------------------------------


@pytest.fixture
def stoppable_redis() -> Iterator[Any]:
    """A Redis server of this test's own as the progress cache (SIGSTOP-able)."""
    port = free_port()
    server = start_redis(port)
    conf = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"socket_timeout": 10},
    }
    try:
        with override_settings(
            CACHES={**settings.CACHES, "stoppable": conf},
            PROGRESS_UI={"CACHE_ALIAS": "stoppable", "STRICT_WRITES": True},
        ):
            yield server
    finally:
        stop_process(server)


def forbid_sync_client_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the backend's sync Redis client is asked for in a thread running an
    event loop (the liveness thread beats with it, rightly)."""
    backend = store.backend()
    assert isinstance(backend, RedisBackend)
    real = backend.clients.sync

    def guarded() -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return real()
        raise AssertionError("the sync Redis client was used from the event loop")

    monkeypatch.setattr(backend.clients, "sync", guarded)


async def test_the_loop_keeps_running_while_redis_is_stopped(
    stoppable_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await ProgressSession.acreate({"a": "A", "b": "B"})
    await session.astart("a")
    forbid_sync_client_on_the_loop(monkeypatch)
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def writer() -> float:
        started = time.monotonic()
        for n in range(20):
            await session.aupdate("a", current=n, total=20)
            await session.aupdate("b", percent=n)
        return time.monotonic() - started

    ticking = asyncio.create_task(ticker())
    os.kill(stoppable_redis.pid, signal.SIGSTOP)
    try:
        writing = asyncio.create_task(writer())
        await asyncio.sleep(1.0)
        stopped_ticks = len(ticks)
        assert not writing.done(), "the writes did not wait for the stopped Redis"
    finally:
        os.kill(stoppable_redis.pid, signal.SIGCONT)
    took = await asyncio.wait_for(writing, 10)
    ticking.cancel()
    # About 100 ticks in the second Redis was stopped: the loop ran on.
    assert stopped_ticks >= 50, stopped_ticks
    assert took >= 1.0
    snap = await session.aread()
    assert snap is not None and snap["tasks"]["a"]["current"] == 19


async def test_async_writes_on_redis_use_no_thread_and_no_sync_client(
    stoppable_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asgiref.sync

    forbid_sync_client_on_the_loop(monkeypatch)
    hops: list[Any] = []
    original = asgiref.sync.SyncToAsync.__call__

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(self.func)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(asgiref.sync.SyncToAsync, "__call__", counted)
    session = await ProgressSession.acreate(TASKS)
    child = await session.achild("c", {"x": "X"})
    async for _ in session.aiterate("a", range(3)):
        pass
    await session.aupdate("b", percent=10)
    await session.aerror("b", "no")
    await child.acomplete("x")
    await session.acancel()
    await (await ProgressSession.acreate({"z": "Z"})).adelete()
    assert hops == []
    snap = await asettled(session)
    assert [t["status"] for t in snap["tasks"].values()] == ["complete", "error", "complete"]


# -- async jobs in the runners ----------------------------------------------------------


def test_the_threads_runner_runs_an_async_job(shared_backend: str) -> None:
    session = ProgressSession.create({"x": "X", "y": "Y"})
    future = submit_to_threads(session, "tests.support.async_jobs.async_job", {})
    assert future.result(timeout=30) == "complete"  # type: ignore[attr-defined]
    snap = settled(session)
    assert [t["status"] for t in snap["tasks"].values()] == ["complete", "complete"]
    assert snap["tasks"]["x"]["current"] == 3


def test_a_failing_async_job_fails_its_tasks(locmem: str) -> None:
    session = ProgressSession.create({"x": "X"})
    future = submit_to_threads(session, "tests.support.async_jobs.failing_async_job", {})
    with pytest.raises(ProgressError):
        future.result(timeout=30)  # type: ignore[attr-defined]
    snap = session.to_dict()
    assert (snap["tasks"]["x"]["status"], snap["tasks"]["x"]["message"]) == (
        "error",
        "The async job failed.",
    )


async def test_arun_job_awaits_an_async_job_in_the_running_loop(backend: str) -> None:
    session = await ProgressSession.acreate({"x": "X"})
    outcome = await work.arun_job(session.to_reference(), "tests.support.async_jobs.async_job", {})
    assert outcome == "complete"
    snap = await asettled(session)
    assert snap["tasks"]["x"]["status"] == "complete"


def test_django_tasks_runs_an_async_progress_task(locmem: str) -> None:
    from tests.support import settings_tasks

    with override_settings(TASKS=settings_tasks.TASKS):
        from progress_ui.contrib.django_tasks import progress_task
        from tests.support.async_jobs import async_work

        task = progress_task(async_work)
        assert asyncio.iscoroutinefunction(task.func)
        session = ProgressSession.create({"import": "Import"})
        result = session.enqueue("import", task.using(backend="immediate"), 4)
        assert result.status == "SUCCESSFUL"  # type: ignore[attr-defined]
        assert result.return_value == 4  # type: ignore[attr-defined]
    snap = settled(session)
    task_snap = snap["tasks"]["import"]
    assert (task_snap["status"], task_snap["current"], task_snap["message"]) == (
        "complete",
        4,
        "4 rows, async",
    )


class AsyncJobView(StartProgressMixin, TemplateView):
    template_name = "progress_ui/page.html"
    progress_tasks = {"x": "X", "y": "Y"}
    progress_job = async_job
    progress_runner = "threads"


def test_the_view_mixin_accepts_an_async_job(shared_backend: str) -> None:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    request = RequestFactory().post("/start/")
    request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]  # (Django's test client's way)
    request.session = SessionStore()
    request.user = AnonymousUser()
    response = AsyncJobView.as_view()(request)
    response.render()  # type: ignore[attr-defined]
    assert response.status_code == 200
    match = re.search(r'data-progress-session="([^"]+)"', response.content.decode())
    assert match, response.content
    session = ProgressSession.get(match.group(1))
    assert session is not None
    deadline = time.monotonic() + 20
    while settled(session)["status"] != "complete":
        assert time.monotonic() < deadline, settled(session)
        time.sleep(0.05)
    assert settled(session)["tasks"]["y"]["current"] == 3
