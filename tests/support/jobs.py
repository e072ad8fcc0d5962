"""Jobs (whole-session work) that the runner tests hand to real workers. Each
reports the PID of the process that ran it."""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.core.cache import caches

from progress_ui import ProgressError, ProgressSession, TaskCancelled


def count_job(session: ProgressSession, rows: int = 3) -> None:
    for task_id in session.tasks:
        for _ in session.iterate(task_id, range(rows), message=f"pid {os.getpid()}"):
            pass


def stopped_key(session_id: str) -> str:
    return f"progress-test-stopped:{session_id}"


def slow_job(session: ProgressSession, seconds: float = 30.0) -> None:
    """Reports, then steps slowly until cancelled (or ``seconds`` pass); records
    when it stopped after a cancel (wall clock) for the benchmarks."""
    deadline = time.monotonic() + seconds
    for task_id in session.tasks:
        session.update(task_id, percent=5, message=f"pid {os.getpid()}")
    try:
        while time.monotonic() < deadline:
            for task_id in session.tasks:
                session.update(task_id, message=f"pid {os.getpid()} at {time.monotonic():.2f}")
            time.sleep(0.05)
    except TaskCancelled:
        caches[settings.PROGRESS_UI["CACHE_ALIAS"]].set(
            stopped_key(session.session_id), time.time()
        )
        raise


def steady_job(session: ProgressSession, steps: int = 40, delay: float = 0.02) -> int:
    """Counted steps at a steady pace; returns how many ran (all of them, whether
    or not the progress cache answers)."""
    done = 0
    for task_id in session.tasks:
        for _ in session.iterate(task_id, range(steps)):
            time.sleep(delay)
            done += 1
    return done


def fail_job(session: ProgressSession, message: str = "") -> None:
    """Reports, then raises: a ``ProgressError`` showing ``message``, or (no
    message) an error whose text must never reach a browser."""
    for task_id in session.tasks:
        session.update(task_id, percent=20, message=f"pid {os.getpid()}")
    if message:
        raise ProgressError(message)
    raise RuntimeError("password=hunter2 in /etc/secret.conf")
