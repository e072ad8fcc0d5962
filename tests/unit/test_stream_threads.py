"""The executor that lets a stream give its request thread back
(``progress_ui.streaming.threads``)."""

from __future__ import annotations

import threading
import time

import pytest

from progress_ui.streaming import threads
from progress_ui.streaming.threads import RequestThread


def test_a_released_request_thread_serves_the_next_request() -> None:
    executor = RequestThread()
    assert not executor.alive
    first = executor.submit(threading.current_thread).result(5)
    assert executor.alive and first is not threading.current_thread()
    executor.release()
    assert not executor.alive
    # Once done with its work, the thread waits among the idle ones...
    deadline = time.monotonic() + 5
    while first not in {w.thread for w in threads._idle.workers}:
        assert time.monotonic() < deadline, "the released thread did not come back"
        time.sleep(0.01)
    # ... and the next request takes it: no thread started.
    before = threading.active_count()
    other = RequestThread()
    assert other.submit(threading.current_thread).result(5) is first
    assert threading.active_count() == before
    other.shutdown()
    # A later call of the released executor takes a thread again.
    second = executor.submit(threading.current_thread).result(5)
    assert second.is_alive() and executor.started == 2
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(threading.current_thread)


def test_work_given_to_a_request_thread_runs_in_order_on_one_thread() -> None:
    executor = RequestThread()
    seen: list[tuple[int, threading.Thread]] = []
    futures = [
        executor.submit(lambda i=i: seen.append((i, threading.current_thread()))) for i in range(20)
    ]
    for future in futures:
        future.result(5)
    assert [i for i, _ in seen] == list(range(20))
    assert len({thread for _, thread in seen}) == 1
    with pytest.raises(ZeroDivisionError):
        executor.submit(lambda: 1 / 0).result(5)
    executor.shutdown()


def test_threads_in_use_at_once_are_separate_and_the_idle_ones_bounded() -> None:
    executors = [RequestThread() for _ in range(threads._MAX_IDLE + 4)]
    gate = threading.Event()
    futures = [e.submit(lambda: (gate.wait(5), threading.current_thread())[1]) for e in executors]
    gate.set()
    used = {f.result(5) for f in futures}
    assert len(used) == len(executors)  # one thread per request in flight
    for executor in executors:
        executor.shutdown()
    assert len(threads._idle.workers) <= threads._MAX_IDLE
