"""Worker loss: a task whose process died turns to ERROR; a live one stays RUNNING
however long it runs without reporting. Real child processes, SIGKILLed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from progress_ui import ProgressSession
from progress_ui.conf import current
from progress_ui.engine import liveness, store
from progress_ui.streaming.hub import follow
from tests.support.workers import kill_process, running_process

#: Fast liveness for the tests: a beat every 0.3 s, keys live 0.6 s.
FAST = {"WORKER_BEAT_INTERVAL": 0.3, "WORKER_STALE_TIMEOUT": 0.6, "COMPLETING_DURATION": 0.05}

pytestmark = pytest.mark.slow


@pytest.fixture
def fast_liveness(shared_backend: str) -> Iterator[dict[str, Any]]:
    ui = {"CACHE_ALIAS": shared_backend, "MAX_STREAM_DURATION": 60, **FAST}
    with override_settings(PROGRESS_UI=ui):
        yield ui


def child_env(ui: dict[str, Any]) -> dict[str, str]:
    return {"PROGRESS_TEST_CACHE": ui["CACHE_ALIAS"], "PROGRESS_TEST_UI": json.dumps(ui)}


def wait_for_status(session: ProgressSession, task_id: str, status: str, timeout: float) -> float:
    """Seconds until the task reads ``status`` (reading as a viewer would)."""
    start = time.monotonic()
    while session.to_dict()["tasks"][task_id]["status"] != status:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{task_id} not {status} in {timeout}s: {session.to_dict()}")
        time.sleep(0.05)
    return time.monotonic() - start


def test_killed_process_turns_its_task_to_error(fast_liveness: dict[str, Any]) -> None:
    session = ProgressSession.create({"held": "Held", "other": "Other"})
    argv = [sys.executable, "-m", "tests.support.hold_task", session.session_id, "held"]
    with running_process(argv, env=child_env(fast_liveness), ready="holding") as child:
        assert session.to_dict()["tasks"]["held"]["status"] == "running"
        # Alive and silent for several stale timeouts: still running.
        time.sleep(4 * FAST["WORKER_STALE_TIMEOUT"])
        assert session.to_dict()["tasks"]["held"]["status"] == "running"
        kill_process(child)
        waited = wait_for_status(session, "held", "error", timeout=15)
    snapshot = session.to_dict()
    assert snapshot["tasks"]["held"]["message"] == "The worker stopped responding."
    assert snapshot["status"] == "error"
    # Stale timeout plus confirmation over 1.5 beats, plus polling slack.
    assert waited < FAST["WORKER_STALE_TIMEOUT"] + 3 * FAST["WORKER_BEAT_INTERVAL"] + 2


def test_streams_end_once_the_worker_is_lost(fast_liveness: dict[str, Any]) -> None:
    session = ProgressSession.create({"held": "Held"})
    argv = [sys.executable, "-m", "tests.support.hold_task", session.session_id, "held"]
    with running_process(argv, env=child_env(fast_liveness), ready="holding") as child:
        stream = session.stream(poll_interval=0.05)
        assert json.loads(next(stream))["status"] == "running"
        kill_process(child)
        last = [json.loads(line) for line in stream][-1]
    assert last["status"] == "error"
    assert last["tasks"]["held"]["message"] == "The worker stopped responding."


def test_hub_streams_end_once_the_worker_is_lost(fast_liveness: dict[str, Any]) -> None:
    """The browsers' path (a shared hub poller, polling or pushed): a lost worker
    shows as an error there too, with no other process reading the session."""
    session = ProgressSession.create({"held": "Held"})
    argv = [sys.executable, "-m", "tests.support.hold_task", session.session_id, "held"]

    async def follow_to_the_end(child: Any) -> list[Any]:
        seen: list[Any] = []
        async with asyncio.timeout(20):
            async for item in follow(session, poll_interval=0.05):
                if item is None:
                    continue  # a heartbeat
                seen.append(item)
                if len(seen) == 1:
                    assert item["status"] == "running"
                    kill_process(child)
        return seen

    with running_process(argv, env=child_env(fast_liveness), ready="holding") as child:
        seen = asyncio.run(follow_to_the_end(child))
    assert seen[-1]["status"] == "error", seen[-1]
    assert seen[-1]["tasks"]["held"]["message"] == "The worker stopped responding."


def test_a_silent_task_outlives_the_ttl_while_its_process_lives(
    fast_liveness: dict[str, Any],
) -> None:
    ui = {**fast_liveness, "TTL": 2}
    with override_settings(PROGRESS_UI=ui):
        # The child creates the session: a TTL of 2 s would not outlast a slow
        # start-up of the child on a busy machine.
        argv = [sys.executable, "-m", "tests.support.hold_task", "new", "long", "5"]
        with running_process(argv, env=child_env(ui), ready="holding") as child:
            created = re.search(r"created (\S+)", child.output())
            assert created, child.output()
            session = ProgressSession.get(created[1])
            assert session is not None
            # 5 s without a report, more than twice the TTL: the process renews it.
            for _ in range(8):
                time.sleep(0.5)
                copy = ProgressSession.get(session.session_id)
                assert copy is not None, "the session expired while its task ran"
                assert copy.to_dict()["tasks"]["long"]["status"] == "running"
            assert child.wait_exit(15) == 0
        assert session.to_dict()["tasks"]["long"]["status"] == "complete"


def test_one_liveness_write_per_interval_whatever_the_number_of_tasks(
    locmem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    beats: list[str] = []
    original = store.mark_alive
    monkeypatch.setattr(store, "mark_alive", lambda t, ttl: (beats.append(t), original(t, ttl)))
    counts = {}
    for n in (1, 100):
        with override_settings(PROGRESS_UI={"CACHE_ALIAS": "locmem", **FAST}):
            session = ProgressSession.create({f"t{i}": f"T{i}" for i in range(n)})
            for i in range(n):
                session.start(f"t{i}")
            before = len(beats)
            time.sleep(10 * FAST["WORKER_BEAT_INTERVAL"])
            counts[n] = len(beats) - before
            for i in range(n):
                session.complete(f"t{i}")
    # About 10 beats in the window, for 1 task as for 100, all from this process.
    assert 7 <= counts[1] <= 12, counts
    assert 7 <= counts[100] <= 12, counts
    assert set(beats) == {liveness.process_token()}


def test_a_round_that_raises_does_not_end_the_beats(
    locmem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backend raising something unexpected (pytest-django refusing the
    # database cache to this thread did, in CI) once killed the thread for good:
    # the process's tasks then looked lost to every reader.
    beats: list[str] = []
    original = store.mark_alive

    def flaky(token: str, ttl: float) -> object:
        beats.append(token)
        if len(beats) == 2:  # the first beat after start(): the thread's
            raise RuntimeError("not a cache outage")
        return original(token, ttl)

    monkeypatch.setattr(store, "mark_alive", flaky)
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "locmem", **FAST}):
        session = ProgressSession.create({"t": "T"})
        session.start("t")
        deadline = time.monotonic() + 10
        while len(beats) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        session.complete("t")
    assert len(beats) >= 4, beats


def test_own_process_is_never_reported_dead(locmem: str) -> None:
    token = liveness.process_token()
    assert liveness.dead_runners({token}) == set()
    assert current().WORKER_BEAT_INTERVAL > 0


# -- a claim is released whatever the last write did (issue 21 H) -------------------------

#: Short lifetimes: a session nobody renews is gone 2 s after it finished. A
#: TTL of 3 s (renewed every second while a task is claimed) leaves a busy
#: machine's start-up of the cancelling process room; 1 s did not, on CI.
SHORT_LIVES = {**FAST, "TTL": 3, "FINISHED_TTL": 2}


def cancel_in_another_process(ui: dict[str, Any], session_id: str, task_id: str) -> None:
    """``ProgressSession.cancel`` run by a separate Python process (a web process)."""
    code = (
        "import django; django.setup()\n"
        "from progress_ui import ProgressSession\n"
        f"assert ProgressSession.get({session_id!r}).cancel({task_id!r}) == [{task_id!r}]\n"
    )
    env = {**os.environ, **child_env(ui), "DJANGO_SETTINGS_MODULE": "tests.support.settings"}
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=False)
    assert done.returncode == 0


def expires_within(session_id: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while ProgressSession.get(session_id) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def created_to_last(tasks: dict[str, str], ui: dict[str, Any]) -> ProgressSession:
    """A session that outlives the start of the other processes (which take
    longer than the short TTL under load); the writes that follow set it."""
    with override_settings(PROGRESS_UI={**ui, "TTL": 60}):
        return ProgressSession.create(tasks)


@pytest.fixture
def short_lives(redis_backend: str) -> Iterator[dict[str, Any]]:
    ui = {"CACHE_ALIAS": redis_backend, "MAX_STREAM_DURATION": 60, **SHORT_LIVES}
    with override_settings(PROGRESS_UI=ui):
        yield ui


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[str]:
    from tests.conftest import _use_backend

    yield from _use_backend("redis", request)


def test_an_ending_that_finds_the_task_ended_releases_the_claim(
    short_lives: dict[str, Any],
) -> None:
    """Regression: a job that ignored a cancel made elsewhere, then completed (a
    no-op: the task had ended), kept its claim, so its process renewed the
    finished session for as long as it lived."""
    session = created_to_last({"a": "A"}, short_lives)
    session.start("a")  # this process runs it
    cancel_in_another_process(short_lives, session.session_id, "a")
    session.complete("a")  # changes nothing: the task was cancelled
    assert expires_within(session.session_id, 8), "the finished session is still renewed"
    assert (session.session_id, "a") not in liveness.held_claims()


def test_a_session_ended_elsewhere_is_not_renewed_while_its_job_runs(
    short_lives: dict[str, Any],
) -> None:
    """Regression: the process running a task renewed its session while the job
    ran, even once the task was cancelled: a finished session outlived
    FINISHED_TTL. Now it expires FINISHED_TTL after the cancel."""
    session = created_to_last({"a": "A"}, short_lives)
    argv = [sys.executable, "-m", "tests.support.hold_task", session.session_id, "a", "30"]
    with running_process(argv, env=child_env(short_lives), ready="holding"):
        cancel_in_another_process(short_lives, session.session_id, "a")
        assert expires_within(session.session_id, 8), "the finished session is still renewed"
