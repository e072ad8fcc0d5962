"""One clock: what viewers see does not depend on the clocks of the processes that
write (issue 21, N). Real child processes whose wall clock runs 30 s ahead or
behind (``tests/support/skewed_clock``) drive or read sessions in every cache that
processes share, while this process, whose clock agrees with the stores', reads.

Before the store's clock was used, a writer 30 s ahead held a completed bar at
99 % "running" for 30 s and a bar without counts at 0 %; 30 s behind, a counted bar
read "stalled" for the whole run and a bar without counts 93 % at once; on the
file and database caches, whose entries expire by the writer's clock, a writer
behind lost its liveness key at once, so its task read "The worker stopped
responding." while it ran.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import override_settings

from progress_ui import ProgressSession
from progress_ui.conf import current
from progress_ui.core.simulation import simulated_percent
from progress_ui.core.snapshot import TaskSnapshot
from tests.support.workers import WorkerProcess, running_process, skewed_clock_env

pytestmark = pytest.mark.slow

SKEW = 30.0
SKEWS = [pytest.param(SKEW, id="ahead"), pytest.param(-SKEW, id="behind")]
#: Fast liveness, so that a liveness key that expires by a skewed clock shows.
FAST = {"WORKER_BEAT_INTERVAL": 0.3, "WORKER_STALE_TIMEOUT": 0.6}
#: Seconds a reading may be late: process exit, polling, a busy 2-core machine.
SLACK = 2.0


@pytest.fixture
def ui(shared_backend: str) -> Iterator[dict[str, Any]]:
    settings = {"CACHE_ALIAS": shared_backend, "MAX_STREAM_DURATION": 60, **FAST}
    with override_settings(PROGRESS_UI=settings):
        yield settings


def skewed_env(ui: dict[str, Any], skew: float) -> dict[str, str]:
    return {
        "PROGRESS_TEST_CACHE": ui["CACHE_ALIAS"],
        "PROGRESS_TEST_UI": json.dumps(ui),
        **skewed_clock_env(skew),
    }


def check_skew(child: WorkerProcess, skew: float, seen_at: float) -> None:
    """The child's wall clock really is ``skew`` seconds off this one's."""
    line = next(x for x in child.output(1_000_000).splitlines() if x.startswith("clock "))
    theirs = float(line.split()[1])
    assert abs(theirs - seen_at - skew) < SLACK + 3, (theirs, seen_at, skew)


@contextmanager
def skewed_worker(
    ui: dict[str, Any],
    skew: float,
    session: ProgressSession,
    task_id: str,
    kind: str,
    seconds: float,
) -> Iterator[tuple[WorkerProcess, float, float]]:
    """A child running ``task_id``; yields it, when it was spawned and when its
    first write was seen (this process's clock)."""
    argv = [
        sys.executable, "-m", "tests.support.skewed_task",
        session.session_id, task_id, kind, str(seconds),
    ]  # fmt: skip
    spawned = time.time()
    with running_process(argv, env=skewed_env(ui, skew), ready="started") as child:
        seen = time.time()
        check_skew(child, skew, seen)
        yield child, spawned, seen


def read_until_exit(session: ProgressSession, child: WorkerProcess, task_id: str) -> list[Any]:
    readings = []
    while child.is_running():
        readings.append(session.to_dict()["tasks"][task_id])
        time.sleep(0.1)
    return readings


def wait_complete(session: ProgressSession, task_id: str, exited: float) -> TaskSnapshot:
    """The task once it reads complete: within the completing animation (and the
    slack) of its writer's exit."""
    limit = current().COMPLETING_DURATION + SLACK
    while True:
        snapshot = session.to_dict()
        task = snapshot["tasks"][task_id]
        if task["status"] == "complete":
            return task
        assert time.monotonic() - exited < limit, (
            f"the bar still reads {task['status']} {task['percent']} % "
            f"{time.monotonic() - exited:.1f} s after its writer ended"
        )
        time.sleep(0.05)


@pytest.mark.parametrize("skew", SKEWS)
def test_a_counted_bar_is_live_while_updates_flow_and_complete_when_they_end(
    ui: dict[str, Any], skew: float
) -> None:
    session = ProgressSession.create({"work": "Work"})
    with skewed_worker(ui, skew, session, "work", "counted", 5.0) as (child, spawned, seen):
        readings = read_until_exit(session, child, "work")
        assert child.wait_exit(30) == 0, child.output()
        exited = time.monotonic()
        ended = time.time()
        task = wait_complete(session, "work", exited)
    running = [r for r in readings if r["status"] == "running"]
    assert len(running) >= 10, readings
    assert not [r for r in running if r["stalled"]], "stalled while updates flowed"
    assert not [r for r in readings if r["status"] == "error"], readings
    # A time left is estimated once there is history (2 s of samples).
    assert [r for r in running if r["eta"] is not None], running
    # The stored times are the store's, which this process's clock agrees with.
    started, finished = task["started_at"], task["finished_at"]
    assert started is not None and finished is not None, task
    assert spawned - SLACK <= started <= seen + SLACK
    assert finished <= ended + SLACK
    assert 4.0 <= finished - started <= 5.0 + 3 * SLACK


@pytest.mark.parametrize("skew", SKEWS)
def test_a_bar_without_counts_follows_its_curve_and_completes_when_it_ends(
    ui: dict[str, Any], skew: float
) -> None:
    conf = current()
    task_id = "work"
    session = ProgressSession.create({task_id: "Work"})

    def curve(elapsed: float) -> float:
        return simulated_percent(
            elapsed, half_life=conf.SIMULATION_HALF_LIFE, cap=conf.SIMULATION_CAP
        )

    with skewed_worker(ui, skew, session, task_id, "simulated", 3.0) as (child, spawned, seen):
        time.sleep(1.0)
        before = time.time()
        task = session.to_dict()["tasks"][task_id]
        after = time.time()
        # Started after the spawn and before its write was seen: the percent
        # lies on the curve between those two moments.
        assert task["status"] == "running" and task["simulated"], task
        low, high = curve(before - seen), curve(after - spawned)
        assert int(low) <= task["percent"] <= high + 1, (task["percent"], low, high)
        assert child.wait_exit(30) == 0, child.output()
        done = wait_complete(session, task_id, time.monotonic())
    assert done["started_at"] is not None
    assert spawned - SLACK <= done["started_at"] <= seen + SLACK


@pytest.mark.parametrize("skew", SKEWS)
def test_a_skewed_reader_sees_what_the_others_see(ui: dict[str, Any], skew: float) -> None:
    """A viewer process whose clock is off reads the bars as this one does."""
    session = ProgressSession.create({"sim": "Simulated", "counted": "Counted"})
    session.start("sim")
    stop = threading.Event()

    def count() -> None:
        i = 0
        while not stop.is_set():
            session.update("counted", current=i, total=10_000)
            i += 1
            time.sleep(0.1)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        time.sleep(2.5)  # a few samples: a counted bar has a rate by now
        before = session.to_dict()
        argv = [sys.executable, "-m", "tests.support.read_session", session.session_id]
        with running_process(argv, env=skewed_env(ui, skew), ready="}") as child:
            line = child.output(1_000_000).strip().splitlines()[-1]
            after = session.to_dict()
    finally:
        stop.set()
        counter.join()
    seen = json.loads(line)
    for mode in ("blocking", "async"):
        theirs = seen[mode]
        sim = theirs["tasks"]["sim"]
        assert sim["status"] == "running", (mode, sim)
        low, high = before["tasks"]["sim"]["percent"], after["tasks"]["sim"]["percent"]
        assert low <= sim["percent"] <= high, (mode, sim["percent"], low, high)
        counted = theirs["tasks"]["counted"]
        assert counted["status"] == "running" and not counted["stalled"], (mode, counted)
