"""Jobs (whole-session work) that the runner tests hand to real workers. Each
reports the PID of the process that ran it."""

from __future__ import annotations

import os
import time

from progress_ui import ProgressSession


def count_job(session: ProgressSession, rows: int = 3) -> None:
    for task_id in session.tasks:
        for _ in session.iterate(task_id, range(rows), message=f"pid {os.getpid()}"):
            pass


def slow_job(session: ProgressSession, seconds: float = 30.0) -> None:
    """Reports, then steps slowly until cancelled (or ``seconds`` pass)."""
    deadline = time.monotonic() + seconds
    for task_id in session.tasks:
        session.update(task_id, percent=5, message=f"pid {os.getpid()}")
    while time.monotonic() < deadline:
        for task_id in session.tasks:
            session.update(task_id, message=f"pid {os.getpid()} at {time.monotonic():.2f}")
        time.sleep(0.05)
