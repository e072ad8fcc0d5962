"""``async def`` work for the async API tests: jobs of whole sessions (the view
mixins' runners) and task work (``progress_task``)."""

from __future__ import annotations

import asyncio
import os
import threading

from progress_ui import ProgressError, ProgressSession, TaskProgress


async def rows() -> object:
    for n in range(4):
        await asyncio.sleep(0)
        yield n


async def async_job(session: ProgressSession, rows_per_task: int = 3) -> None:
    """Counts each task through an async iterable, reporting where it ran."""
    for task_id in session.tasks:
        where = f"pid {os.getpid()} thread {threading.get_ident()}"
        async for _ in session.aiterate(task_id, range(rows_per_task), message=where):
            await asyncio.sleep(0)


async def failing_async_job(session: ProgressSession) -> None:
    for task_id in session.tasks:
        await session.aupdate(task_id, percent=30)
    raise ProgressError("The async job failed.")


async def async_work(progress: TaskProgress, total: int) -> int:
    """Task work (``progress_task``): an async count, then a message."""
    count = 0
    async for _ in progress.aiterate(range(total)):
        count += 1
    await progress.aupdate(message=f"{count} rows, async")
    return count
