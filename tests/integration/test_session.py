"""ProgressSession: the spec's API, and what goes beyond it, on every cache backend."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from progress_ui import (
    ParallelTask,
    ProgressError,
    ProgressSession,
    ProgressStatus,
    SequentialTask,
    TaskCancelled,
    UnknownTaskError,
)
from progress_ui.engine import store
from tests.support.cache_counter import CacheCounter

TASKS = {"import_products": "Import Products", "update_prices": "Update Prices"}


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def fast(**extra: Any) -> Any:
    """Settings with a short completing animation, keeping the backend choice."""
    from progress_ui.conf import current

    return override_settings(
        PROGRESS_UI={
            "CACHE_ALIAS": current().CACHE_ALIAS,
            "COMPLETING_DURATION": 0.05,
            "MAX_STREAM_DURATION": 60,
            **extra,
        }
    )


# -- create / get -------------------------------------------------------------


def test_create_then_get_sees_the_same_state(backend: str) -> None:
    session = ProgressSession.create(TASKS)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", session.session_id)
    copy = ProgressSession.get(session.session_id)
    assert copy is not None
    assert copy.tasks == TASKS
    assert copy.to_dict() == session.to_dict()
    assert session.status is ProgressStatus.PENDING
    assert session.overall_percent == 0


def test_session_ids_carry_192_bits_in_url_safe_text(locmem: str) -> None:
    session_id = ProgressSession.create({"a": "A"}).session_id
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", session_id)
    # 32 base64url characters decode to 24 random bytes.
    assert len(base64.urlsafe_b64decode(session_id)) == 24


def test_get_missing_returns_none(backend: str) -> None:
    assert ProgressSession.get("A" * 32) is None


@pytest.mark.parametrize(
    "bad", ["", "short", "x" * 33, "../../etc/passwd" + "a" * 16, "a b" * 11, None, 42]
)
def test_get_rejects_malformed_ids_without_touching_the_cache(
    locmem: str, bad: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    cache = caches["locmem"]
    monkeypatch.setattr(cache, "get", lambda *a, **k: calls.append("get"))
    assert ProgressSession.get(bad) is None
    assert calls == []


async def test_aget(backend: str) -> None:
    from asgiref.sync import sync_to_async

    session = await sync_to_async(ProgressSession.create)(TASKS)
    copy = await ProgressSession.aget(session.session_id)
    assert copy is not None and copy.tasks == TASKS
    assert await ProgressSession.aget("nope") is None
    snap = await copy.aread()
    assert snap is not None and snap["status"] == "pending"


# -- the spec's task API ---------------------------------------------------------


def test_sequential_success(backend: str) -> None:
    session = ProgressSession.create(TASKS)
    with fast():
        task = session.add_sequential("import_products", lambda x, y: x + y, 2, y=3)
        assert isinstance(task, SequentialTask)
        assert task.result == 5
        wait_for(lambda: session.to_dict()["tasks"]["import_products"]["status"] == "complete")
        assert session.to_dict()["tasks"]["import_products"]["percent"] == 100
        assert session.to_dict()["tasks"]["update_prices"]["status"] == "pending"


def test_sequential_error_is_stored_and_reraised(backend: str) -> None:
    session = ProgressSession.create(TASKS)

    def boom() -> None:
        raise ProgressError("Supplier feed returned 503")

    task = session.add_sequential("import_products", boom)
    with pytest.raises(ProgressError, match="503"):
        _ = task.result
    snap = session.to_dict()
    assert snap["status"] == "error"
    assert snap["tasks"]["import_products"]["message"] == "Supplier feed returned 503"
    assert session.has_error


def test_other_exceptions_show_a_generic_message_and_are_logged(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    session = ProgressSession.create(TASKS)

    def leak() -> None:
        raise RuntimeError("password=hunter2 in SELECT * FROM secrets")

    with caplog.at_level(logging.ERROR, logger="progress_ui"):
        session.add_sequential("import_products", leak)
    message = session.to_dict()["tasks"]["import_products"]["message"]
    assert message == "Something went wrong."
    assert "hunter2" not in json.dumps(session.to_dict())
    assert any("hunter2" in (r.exc_text or "") for r in caplog.records)


def test_parallel_tasks_complete_through_done_callbacks(backend: str) -> None:
    session = ProgressSession.create(TASKS)
    gate = threading.Event()
    with fast(), ThreadPoolExecutor(max_workers=2) as pool:
        f1 = pool.submit(lambda: gate.wait(5) and "orders")
        f2 = pool.submit(lambda: gate.wait(5) and "prices")
        t1 = session.add_parallel("import_products", f1)
        t2 = session.add_parallel("update_prices", f2)
        assert isinstance(t1, ParallelTask)
        assert session.is_running
        assert session.status is ProgressStatus.RUNNING
        gate.set()
        assert t1.result == "orders" and t2.result == "prices"
        wait_for(lambda: session.is_complete)
        assert session.status is ProgressStatus.COMPLETE
        assert session.overall_percent == 100


def test_parallel_failure_marks_error_and_result_raises(backend: str) -> None:
    session = ProgressSession.create({"a": "A"})
    future: Future[int] = Future()
    task = session.add_parallel("a", future)
    future.set_exception(ProgressError("remote said no"))
    with pytest.raises(ProgressError):
        _ = task.result
    assert session.status is ProgressStatus.ERROR
    assert session.to_dict()["tasks"]["a"]["message"] == "remote said no"


def test_parallel_with_an_already_finished_future(backend: str) -> None:
    session = ProgressSession.create({"a": "A"})
    future: Future[int] = Future()
    future.set_result(7)
    with fast():
        assert session.add_parallel("a", future).result == 7
        wait_for(lambda: session.is_complete)


def test_to_dict_shape_and_completing_reads_as_running(backend: str) -> None:
    session = ProgressSession.create(TASKS)
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": backend, "COMPLETING_DURATION": 30}):
        session.start("import_products")
        session.complete("import_products", message="Done importing")
        snap = session.to_dict()
    assert set(snap) == {"session_id", "status", "overall_percent", "tasks", "expired"}
    task = snap["tasks"]["import_products"]
    assert {"name", "status", "percent", "message"} <= set(task)
    assert task["status"] == "running"  # COMPLETING is reported as running
    assert task["message"] == "Done importing"
    assert task["name"] == "Import Products"
    assert snap["session_id"] == session.session_id
    assert list(snap["tasks"]) == list(TASKS)  # display order kept


def test_status_precedence_and_properties(backend: str) -> None:
    session = ProgressSession.create({"a": "A", "b": "B"})
    assert not session.is_running and not session.is_complete and not session.has_error
    session.start("a")
    assert session.is_running and session.status is ProgressStatus.RUNNING
    session.error("b", "bad row 7")
    assert session.status is ProgressStatus.ERROR and session.has_error


def test_spec_stream_yields_json_lines_until_complete(backend: str) -> None:
    session = ProgressSession.create(TASKS)
    copy = ProgressSession.get(session.session_id)
    assert copy is not None

    def drive() -> None:
        time.sleep(0.2)
        session.add_sequential("import_products", time.sleep, 0.2)
        session.add_sequential("update_prices", time.sleep, 0.1)

    worker = threading.Thread(target=drive)
    worker.start()
    with fast():
        chunks = list(copy.stream(poll_interval=0.02))
    worker.join()
    assert all(c.endswith("\n") for c in chunks)
    snaps = [json.loads(c) for c in chunks]
    assert snaps[0]["status"] == "pending"
    assert snaps[-1]["status"] == "complete" and snaps[-1]["overall_percent"] == 100
    assert len(snaps) == len({json.dumps(s, sort_keys=True) for s in snaps})  # change-only
    percents = [s["overall_percent"] for s in snaps]
    assert percents == sorted(percents)


def test_stream_ends_on_error(backend: str) -> None:
    session = ProgressSession.create(TASKS)
    session.error("update_prices", "nope")
    snaps = [json.loads(c) for c in session.stream(poll_interval=0.01)]
    assert snaps[-1]["status"] == "error"


def test_spec_stream_ends_at_the_first_error_while_other_tasks_run(backend: str) -> None:
    """The original API: stream() ends at the first error, yielding it last, even
    though another task is still running (an abandoned one would keep it open)."""
    session = ProgressSession.create(TASKS)
    session.start("import_products")  # started, then abandoned
    stream = session.stream(poll_interval=0.01)
    assert json.loads(next(stream))["status"] == "running"
    session.error("update_prices", "Supplier down")
    rest = [json.loads(c) for c in stream]
    assert rest[-1]["status"] == "error"
    assert rest[-1]["tasks"]["import_products"]["status"] == "running"
    assert rest[-1]["tasks"]["update_prices"]["message"] == "Supplier down"


def test_stream_of_a_session_that_vanishes_ends_with_expired(backend: str) -> None:
    # After MISSING_GRACE (short here), in which it looks for the session again.
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": backend, "MISSING_GRACE": 0.2}):
        session = ProgressSession.create(TASKS)
        session.start("import_products")
        stream = session.stream(poll_interval=0.01)
        first = json.loads(next(stream))
        assert first["status"] == "running"
        session.delete()
        rest = [json.loads(c) for c in stream]
    assert rest[-1]["expired"] is True and rest[-1]["status"] == "error"


async def test_astream_follows_work_done_elsewhere(backend: str) -> None:
    import asyncio

    from asgiref.sync import sync_to_async

    session = await sync_to_async(ProgressSession.create)({"a": "A"})
    with fast():

        async def drive() -> None:
            await asyncio.sleep(0.1)
            await sync_to_async(session.update)("a", current=5, total=10)
            await asyncio.sleep(0.1)
            await sync_to_async(session.complete)("a")

        driver = asyncio.create_task(drive())
        snaps = [json.loads(c) async for c in session.astream(poll_interval=0.02)]
        await driver
    assert snaps[-1]["status"] == "complete"
    assert any(s["tasks"]["a"]["current"] == 5 for s in snaps)


# -- bad input and odd orders -------------------------------------------------


@pytest.mark.parametrize("method", ["start", "complete", "error", "update"])
def test_unknown_task_id_names_the_valid_ones(locmem: str, method: str) -> None:
    session = ProgressSession.create(TASKS)
    with pytest.raises(KeyError) as exc_info:
        getattr(session, method)("nope")
    assert isinstance(exc_info.value, ValueError)
    assert isinstance(exc_info.value, UnknownTaskError)
    assert "import_products" in str(exc_info.value) and "update_prices" in str(exc_info.value)


def test_unknown_task_in_add_helpers_raises_before_running(locmem: str) -> None:
    session = ProgressSession.create(TASKS)
    ran: list[int] = []
    with pytest.raises(ValueError, match="import_products"):
        session.add_sequential("nope", lambda: ran.append(1))
    with pytest.raises(KeyError):
        session.add_parallel("nope", Future())
    assert ran == []


def test_start_twice_is_harmless_and_start_after_finish_raises(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.start("a")
    first = store.read_task(session.session_id, "a")
    session.start("a")
    assert store.read_task(session.session_id, "a") == first  # no write
    session.error("a", "x")
    with pytest.raises(ValueError, match="already finished"):
        session.start("a")
    assert session.status is ProgressStatus.ERROR


def test_complete_before_start_finishes(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})
    with fast():
        session.complete("a")
        wait_for(lambda: session.is_complete)
    assert list(session.stream(poll_interval=0.01))  # terminates


def test_keyboard_interrupt_in_sequential_task_leaves_error_state(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.add_sequential("a", interrupted)
    assert session.status is ProgressStatus.ERROR
    assert session.to_dict()["tasks"]["a"]["message"] == "Interrupted."


@pytest.mark.parametrize(
    "tasks",
    [{}, {"": "x"}, {"a b": "x"}, {"-a": "x"}, {"a" * 65: "x"}, {"a/b": "x"}, {"<b>": "x"}],
)
def test_invalid_task_ids_are_refused(locmem: str, tasks: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        ProgressSession.create(tasks)


def test_too_many_tasks(locmem: str) -> None:
    with pytest.raises(ValueError, match="MAX_TASKS"):
        ProgressSession.create({f"t{i}": "x" for i in range(101)})


def test_names_and_messages_are_bounded_and_cleaned(locmem: str) -> None:
    session = ProgressSession.create({"a": "N" * 5000})
    assert len(session.tasks["a"]) == 200
    session.update("a", message="M" * 10_000 + "\x00\x1b[31m")
    message = session.to_dict()["tasks"]["a"]["message"]
    assert len(message) == 500 and message.endswith("\u2026")
    session.update("a", message="line1\r\nline2\x00\x07")
    assert session.to_dict()["tasks"]["a"]["message"] == "line1\nline2"


def test_update_rejects_negative_numbers(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})
    with pytest.raises(ValueError, match="current"):
        session.update("a", current=-1)


# -- real progress --------------------------------------------------------------


def test_update_reports_real_progress(backend: str) -> None:
    session = ProgressSession.create({"a": "A"})
    session.update("a", current=25, total=100, message="25 of 100 rows")
    task = session.to_dict()["tasks"]["a"]
    started_at = task.pop("started_at")
    assert isinstance(started_at, float) and abs(time.time() - started_at) < 60
    assert task == {
        "name": "A",
        "status": "running",
        "percent": 25,
        "message": "25 of 100 rows",
        "current": 25,
        "total": 100,
        "simulated": False,
        "weight": 1.0,
        "step": None,
        "steps": None,
        "step_name": "",
        "finished_at": None,
        "rate": None,  # one sample: no estimate yet
        "eta": None,
        "stalled": False,
    }
    session.update("a", percent=60)
    assert session.to_dict()["tasks"]["a"]["percent"] == 60


def test_percent_never_goes_backwards(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "locmem", "SIMULATION_HALF_LIFE": 0.05}):
        session.start("a")
        time.sleep(0.2)  # simulated percent is now high
        simulated = session.to_dict()["tasks"]["a"]["percent"]
        assert simulated > 50
        session.update("a", current=1, total=100)  # real progress is lower
        assert session.to_dict()["tasks"]["a"]["percent"] >= simulated
        session.update("a", current=99, total=100)
        assert session.to_dict()["tasks"]["a"]["percent"] == 99


def test_iterate_reports_counts_and_completes(backend: str) -> None:
    session = ProgressSession.create({"a": "A"})
    seen = []
    with fast(ITERATE_WRITE_INTERVAL=0):
        for i in session.iterate("a", list(range(20)), message="rows"):
            seen.append(i)
            if i == 9:
                task = session.to_dict()["tasks"]["a"]
                assert task["total"] == 20 and task["current"] == 9
        wait_for(lambda: session.is_complete)
    assert seen == list(range(20))
    assert session.to_dict()["tasks"]["a"]["current"] == 20


def test_iterate_over_a_generator_without_total_and_break(locmem: str) -> None:
    session = ProgressSession.create({"a": "A"})
    for i in session.iterate("a", (n for n in range(100))):
        if i == 10:
            break
    task = session.to_dict()["tasks"]["a"]
    assert task["status"] == "running" and task["total"] is None and task["current"] == 10


# -- no threads, no idle writes, one round trip -----------------------------------


def test_no_thread_is_started_per_task(backend: str) -> None:
    session = ProgressSession.create({f"t{i}": "T" for i in range(20)})
    futures: list[Future[int]] = [Future() for _ in range(10)]
    before = threading.active_count()
    for i in range(10):
        session.add_parallel(f"t{i}", futures[i])
    for i in range(10, 20):
        session.start(f"t{i}")
    assert threading.active_count() == before
    for f in futures:
        f.set_result(1)
    assert threading.active_count() == before


def counting(monkeypatch: pytest.MonkeyPatch, alias: str) -> CacheCounter:
    """Counts the calls to the cache object the engine uses (on Redis, one object
    shared by the process: see ``store.cache``)."""
    from progress_ui.engine import store

    assert store.cache().__class__ is caches[alias].__class__
    return CacheCounter(store.cache(), monkeypatch.setattr)


def test_running_task_without_news_writes_nothing(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = ProgressSession.create({"a": "A"})
    session.start("a")
    counter = counting(monkeypatch, backend)
    percents = []
    for _ in range(10):
        percents.append(session.to_dict()["tasks"]["a"]["percent"])
        time.sleep(0.05)
    # (The process's liveness beat may write its own key meanwhile.)
    assert [k for k in counter.written if session.session_id in str(k)] == []
    assert percents == sorted(percents) and percents[-1] > percents[0]  # it still moves


def test_snapshot_is_one_round_trip(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "redis":
        pytest.skip("Redis reads bypass Django's cache object: see test_redis_snapshot_is_one_mget")
    session = ProgressSession.create({f"t{i}": "T" for i in range(10)})
    counter = counting(monkeypatch, backend)
    session.to_dict()
    assert counter.calls == {"get_many": 1}


@pytest.fixture
def private_redis() -> Iterator[str]:
    """A Redis server of this test's own as the progress cache: its command
    counts (INFO commandstats) are this test's alone, whatever else runs."""
    from django.conf import settings

    from tests.integration.test_cache_outage import free_port, start_redis
    from tests.support.workers import stop_process

    port = free_port()
    server = start_redis(port)
    location = f"redis://127.0.0.1:{port}/0"
    conf = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location}
    try:
        with override_settings(
            CACHES={**settings.CACHES, "private": conf}, PROGRESS_UI={"CACHE_ALIAS": "private"}
        ):
            yield location
    finally:
        stop_process(server)


def redis_commands(location: str, action: Any, attempts: int = 3) -> list[dict[str, int]]:
    """The Redis commands (INFO commandstats) run while ``action()`` ran, once per
    attempt (a background beat of the liveness thread may add its own to one)."""
    import redis

    client = redis.Redis.from_url(location)

    def calls() -> dict[str, int]:
        return {k: v["calls"] for k, v in client.info("commandstats").items()}

    found = []
    for _ in range(attempts):
        before = calls()
        action()
        after = calls()
        changed = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
        changed.pop("cmdstat_info", None)  # INFO itself
        found.append(changed)
    client.close()
    return found


def test_redis_snapshot_is_one_mget(private_redis: str) -> None:
    session = ProgressSession.create({f"t{i}": "T" for i in range(10)})
    seen = redis_commands(private_redis, session.to_dict)
    assert {"cmdstat_mget": 1} in seen, seen


def test_redis_update_is_one_round_trip(private_redis: str) -> None:
    # Every update stored (none held back: progress_ui.engine.held): what one write costs.
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "private", "UPDATE_WRITE_INTERVAL": 0}):
        session = ProgressSession.create({f"t{i}": "T" for i in range(10)})
        session.update("t3", percent=10)  # the first write of this object reads first
        steps = iter(range(1, 100))
        seen = redis_commands(
            private_redis, lambda: session.update("t3", current=next(steps), total=100)
        )
    # One EVALSHA sent; inside it the compare (two GETs), the two SETs and the
    # PUBLISH that wakes the viewers.
    one = {"cmdstat_evalsha": 1, "cmdstat_get": 2, "cmdstat_set": 2, "cmdstat_publish": 1}
    assert one in seen, seen


# -- concurrency ------------------------------------------------------------------


def test_concurrent_writers_to_different_tasks_lose_nothing(backend: str) -> None:
    n_tasks, n_updates = 12, 30
    session = ProgressSession.create({f"t{i}": f"Task {i}" for i in range(n_tasks)})
    barrier = threading.Barrier(n_tasks)

    def drive(i: int) -> None:
        copy = ProgressSession.get(session.session_id)
        assert copy is not None
        barrier.wait()
        for n in range(1, n_updates + 1):
            copy.update(f"t{i}", current=n, total=n_updates, message=f"{i}:{n}")
        copy.complete(f"t{i}")

    with fast(), ThreadPoolExecutor(max_workers=n_tasks) as pool:
        list(pool.map(drive, range(n_tasks)))
        wait_for(lambda: session.is_complete)
    tasks = session.to_dict()["tasks"]
    for i in range(n_tasks):
        assert tasks[f"t{i}"]["current"] == n_updates
        assert tasks[f"t{i}"]["message"] == f"{i}:{n_updates}"


def test_separate_processes_drive_tasks_while_parent_streams(shared_backend: str) -> None:
    import os
    import subprocess
    import sys

    from django.conf import settings

    n = 4
    session = ProgressSession.create({f"p{i}": f"Process {i}" for i in range(n)})
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.support.settings",
        "PROGRESS_TEST_CACHE": shared_backend,
        "PROGRESS_TEST_DB": str(settings.DB_FILE),
        "PROGRESS_TEST_CACHE_DIR": str(settings.CACHE_DIR),
        "REDIS_URL": settings.REDIS_URL,
    }
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.drive_task", session.session_id, f"p{i}", "25"],
            env=env,
            cwd=str(settings.BASE_DIR),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    with fast():
        snaps = [json.loads(c) for c in session.stream(poll_interval=0.05)]
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    final = snaps[-1]
    assert final["status"] == "complete"
    assert all(t["current"] == 25 for t in final["tasks"].values())
    assert any(t["message"].startswith("working in pid") for t in final["tasks"].values())
    assert len(snaps) > 2  # progress seen while the children worked


def test_child_process_failure_reaches_the_parent(shared_backend: str) -> None:
    import os
    import subprocess
    import sys

    from django.conf import settings

    session = ProgressSession.create({"a": "A"})
    env = {
        **os.environ,
        "PROGRESS_TEST_CACHE": shared_backend,
        "PROGRESS_TEST_DB": str(settings.DB_FILE),
        "PROGRESS_TEST_CACHE_DIR": str(settings.CACHE_DIR),
        "REDIS_URL": settings.REDIS_URL,
    }
    subprocess.run(
        [sys.executable, "-m", "tests.support.drive_task", session.session_id, "a", "3", "fail"],
        env=env,
        cwd=str(settings.BASE_DIR),
        check=True,
        timeout=60,
    )
    snaps = [json.loads(c) for c in session.stream(poll_interval=0.02)]
    assert snaps[-1]["status"] == "error"
    assert "failed on purpose" in snaps[-1]["tasks"]["a"]["message"]


# -- lifetime ---------------------------------------------------------------------


def test_session_expires_after_ttl_without_writes(shared_backend: str) -> None:
    if shared_backend == "db":
        pytest.skip("DatabaseCache stores expiry to the second; covered by file and redis")
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": shared_backend, "TTL": 1}):
        session = ProgressSession.create({"a": "A"})
        assert ProgressSession.get(session.session_id) is not None
        time.sleep(2.2)
        assert ProgressSession.get(session.session_id) is None


def test_finished_session_stays_readable_for_the_grace_period(shared_backend: str) -> None:
    with override_settings(
        PROGRESS_UI={
            "CACHE_ALIAS": shared_backend,
            # 2 s, not 1: DatabaseCache stores expiry to the whole second, so a
            # 1 s lifetime can end within milliseconds of the write.
            "TTL": 2,
            "FINISHED_TTL": 30,
            "COMPLETING_DURATION": 0,
        }
    ):
        session = ProgressSession.create({"a": "A", "b": "B"})
        session.complete("a")
        session.error("b", "failed")
        time.sleep(3.2)
        copy = ProgressSession.get(session.session_id)
        assert copy is not None
        assert copy.to_dict()["status"] == "error"
        assert copy.to_dict()["tasks"]["a"]["status"] == "complete"


@pytest.mark.parametrize("ending", ["complete", "error", "cancel"])
def test_finished_ttl_applies_to_every_ending(ending: str) -> None:
    """Regression (issue 21 I): a completed session kept the TTL (300 s) while
    failed and cancelled ones got FINISHED_TTL, because the session still read
    "running" while its bar animated to 100."""
    import redis
    from django.conf import settings

    from tests.conftest import require_redis

    require_redis()
    ui = {"CACHE_ALIAS": "redis", "TTL": 300, "FINISHED_TTL": 900, "COMPLETING_DURATION": 0.3}
    with override_settings(PROGRESS_UI=ui):
        session = ProgressSession.create({"a": "A"})
        session.start("a")
        getattr(session, ending)("a")
        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = [store.meta_key(session.session_id), store.end_key(session.session_id, "a")]
        lifetimes = [client.ttl(store.cache().make_key(k)) for k in keys]
    assert all(800 < t <= 900 for t in lifetimes), lifetimes


def test_writes_renew_the_session(locmem: str) -> None:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "locmem", "TTL": 1}):
        session = ProgressSession.create({"a": "A"})
        for _ in range(4):
            time.sleep(0.4)
            session.update("a", message="still here")
        assert ProgressSession.get(session.session_id) is not None


def test_finishing_never_rewrites_a_pending_task(
    locmem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: extending a finished session's lifetime rewrote every record,
    so a concurrent start() of a pending task could be undone."""
    extended: list[list[str]] = []
    original = store.renew_finished
    monkeypatch.setattr(
        store,
        "renew_finished",
        lambda sid, meta, finished, ttl: (
            extended.append(sorted(finished)),
            original(sid, meta, finished, ttl),
        ),
    )
    session = ProgressSession.create({"a": "A", "b": "B"})
    session.error("a", "failed")  # nothing runs any more: the session has finished
    assert extended == [["a"]]
    session.start("b")  # the work goes on regardless
    assert session.to_dict()["tasks"]["b"]["status"] == "running"


def test_spec_stream_ends_with_the_retry_line_when_the_cache_fails(
    locmem: str, caplog: pytest.LogCaptureFixture
) -> None:
    session = ProgressSession.create({"a": "A"})
    stream = session.stream(poll_interval=0.01)
    assert json.loads(next(stream))["status"] == "pending"
    # The cache goes away for real: reads now go to a port nothing listens on.
    with (
        override_settings(PROGRESS_UI={"CACHE_ALIAS": "unreachable"}),
        caplog.at_level(logging.WARNING, logger="progress_ui"),
    ):
        rest = list(stream)
    # Something that passes: come back in SSE_RETRY_MS (as the NDJSON endpoint says).
    assert [json.loads(line) for line in rest] == [{"retry": 2000}]
    assert "127.0.0.1:9" in caplog.text  # the details are logged, not sent
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_spec_stream_ends_with_a_safe_error_line_when_it_fails_otherwise(
    locmem: str, caplog: pytest.LogCaptureFixture
) -> None:
    from progress_ui.engine.store import task_key

    session = ProgressSession.create({"a": "A"})
    stream = session.stream(poll_interval=0.01)
    assert json.loads(next(stream))["status"] == "pending"
    # A record no version of progress_ui wrote: a bug, not an outage.
    caches[locmem].set(task_key(session.session_id, "a"), {"status": "finished"}, 60)
    with caplog.at_level(logging.ERROR, logger="progress_ui"):
        rest = list(stream)
    assert [json.loads(line) for line in rest] == [{"error": "Something went wrong."}]
    assert "finished" in caplog.text  # the details are logged, not sent


# -- weights and sub-steps ---------------------------------------------------------


def test_weights_make_the_overall_percent_reflect_the_work(backend: str) -> None:
    session = ProgressSession.create(
        {"validate": "Validate", "import": "Import"}, weights={"import": 9}
    )
    session.update("validate", percent=98)  # the small step nearly done
    session.update("import", percent=10)
    snapshot = session.to_dict()
    assert snapshot["overall_percent"] == int((1 * 98 + 9 * 10) / 10)  # 18, not 54
    assert [t["weight"] for t in snapshot["tasks"].values()] == [1.0, 9.0]
    # The weights travel with the session to other processes.
    copy = ProgressSession.get(session.session_id)
    assert copy is not None and copy.to_dict()["overall_percent"] == 18
    moved = ProgressSession.from_reference(session.to_reference())
    assert moved.to_dict()["overall_percent"] == 18


@pytest.mark.parametrize(
    "weights, error",
    [
        ({"nope": 2}, UnknownTaskError),
        ({"a": 0}, ValueError),
        ({"a": -1}, ValueError),
        ({"a": float("nan")}, ValueError),
    ],
)
def test_bad_weights_are_refused(locmem: str, weights: dict[str, float], error: type) -> None:
    with pytest.raises(error):
        ProgressSession.create({"a": "A", "b": "B"}, weights=weights)


def test_a_task_reports_its_sub_steps(locmem: str) -> None:
    session = ProgressSession.create({"files": "Import files"})
    session.update("files", step=3, steps=12, step_name="invoices.csv\r\n", percent=25)
    task = session.to_dict()["tasks"]["files"]
    assert (task["step"], task["steps"], task["step_name"]) == (3, 12, "invoices.csv\n")
    with pytest.raises(ValueError, match="step"):
        session.update("files", step=-1)


def test_a_child_session_rolls_up_into_its_parent_task(backend: str) -> None:
    with fast(ITERATE_WRITE_INTERVAL=0.0):
        parent = ProgressSession.create({"prepare": "Prepare", "files": "Import files"})
        parent.complete("prepare")
        child = parent.child("files", {"a": "Orders", "b": "Invoices", "c": "Refunds"})
        assert child.owner == parent.owner
        child.complete("a")
        child.update("b", percent=50)
        task = parent.to_dict()["tasks"]["files"]
        assert task["status"] == "running"
        assert (task["step"], task["steps"], task["step_name"]) == (2, 3, "Invoices")
        assert task["percent"] == 50
        time.sleep(0.1)  # the completing animation of "a" is over
        assert child.to_dict()["overall_percent"] == 50
        # Another process, from the child's id alone, rolls up too.
        again = ProgressSession.get(child.session_id)
        assert again is not None
        again.complete("b")
        again.complete("c")
        wait_for(lambda: parent.to_dict()["tasks"]["files"]["status"] == "complete")
        assert parent.to_dict()["status"] == "complete"


def test_a_child_failure_fails_the_parent_task_and_a_parent_cancel_stops_the_child(
    locmem: str,
) -> None:
    parent = ProgressSession.create({"files": "Import files", "other": "Other"})
    child = parent.child("files", {"a": "Orders"})
    child.error("a", "Orders file is empty.")
    task = parent.to_dict()["tasks"]["files"]
    assert (task["status"], task["message"]) == ("error", "Orders file is empty.")

    child2 = parent.child("other", {"x": "X"})
    child2.start("x")
    parent.cancel("other")
    no_throttle = {"CACHE_ALIAS": "locmem", "ITERATE_WRITE_INTERVAL": 0}
    with pytest.raises(TaskCancelled), override_settings(PROGRESS_UI=no_throttle):
        child2.update("x", percent=10)
