"""django-progress-ui: live, animated progress bars for long-running Django work."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it. Loaded on first access, so that
#: ``import progress_ui`` (e.g. from INSTALLED_APPS) never touches Django
#: settings before they are configured.
_EXPORTS = {
    "ParallelTask": ".engine.handles",
    "SequentialTask": ".engine.handles",
    "CacheUnavailable": ".exceptions",
    "ProgressError": ".exceptions",
    "UnknownTaskError": ".exceptions",
    "ProgressSession": ".engine.session",
    "ProgressStatus": ".core.status",
    "ReportedStatus": ".core.status",
    "TaskCancelled": ".exceptions",
    "TaskProgress": ".engine.work",
    "run_task": ".engine.work",
    "end_streams_on_signals": ".streaming.shutdown",
    "release_stream_threads": ".streaming.threads",
    "tune_garbage_collector": ".tuning",
}

__all__ = [
    "CacheUnavailable",
    "ParallelTask",
    "ProgressError",
    "ProgressSession",
    "ProgressStatus",
    "ReportedStatus",
    "SequentialTask",
    "TaskCancelled",
    "TaskProgress",
    "UnknownTaskError",
    "end_streams_on_signals",
    "release_stream_threads",
    "run_task",
    "tune_garbage_collector",
]

if TYPE_CHECKING:
    from progress_ui.core.status import ProgressStatus, ReportedStatus
    from progress_ui.engine.handles import ParallelTask, SequentialTask
    from progress_ui.engine.session import ProgressSession
    from progress_ui.engine.work import TaskProgress, run_task
    from progress_ui.exceptions import (
        CacheUnavailable,
        ProgressError,
        TaskCancelled,
        UnknownTaskError,
    )
    from progress_ui.streaming.shutdown import end_streams_on_signals
    from progress_ui.streaming.threads import release_stream_threads
    from progress_ui.tuning import tune_garbage_collector


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'progress_ui' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
