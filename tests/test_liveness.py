"""Worker loss: a task whose process died turns to ERROR; a live one stays RUNNING
however long it runs without reporting. Real child processes, SIGKILLed."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from progress_ui import ProgressSession, liveness, store
from progress_ui.conf import settings
from tests.workers import kill_process, running_process

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
    argv = [sys.executable, "-m", "tests.hold_task", session.session_id, "held"]
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
    argv = [sys.executable, "-m", "tests.hold_task", session.session_id, "held"]
    with running_process(argv, env=child_env(fast_liveness), ready="holding") as child:
        stream = session.stream(poll_interval=0.05)
        assert json.loads(next(stream))["status"] == "running"
        kill_process(child)
        last = [json.loads(line) for line in stream][-1]
    assert last["status"] == "error"
    assert last["tasks"]["held"]["message"] == "The worker stopped responding."


def test_a_silent_task_outlives_the_ttl_while_its_process_lives(
    fast_liveness: dict[str, Any],
) -> None:
    ui = {**fast_liveness, "TTL": 2}
    with override_settings(PROGRESS_UI=ui):
        session = ProgressSession.create({"long": "Long"})
        argv = [sys.executable, "-m", "tests.hold_task", session.session_id, "long", "5"]
        with running_process(argv, env=child_env(ui), ready="holding") as child:
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


def test_own_process_is_never_reported_dead(locmem: str) -> None:
    token = liveness.process_token()
    assert liveness.dead_runners({token}) == set()
    assert settings.WORKER_BEAT_INTERVAL > 0
