"""django-progress-ui: live, animated progress bars for long-running Django work."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it. Loaded on first access, so that
#: ``import progress_ui`` (e.g. from INSTALLED_APPS) never touches Django
#: settings before they are configured.
_EXPORTS = {
    "ParallelTask": ".handles",
    "SequentialTask": ".handles",
    "ProgressError": ".exceptions",
    "UnknownTaskError": ".exceptions",
    "ProgressSession": ".session",
    "ProgressStatus": ".status",
    "ReportedStatus": ".status",
    "TaskCancelled": ".exceptions",
    "TaskProgress": ".work",
    "run_task": ".work",
}

__all__ = [
    "ParallelTask",
    "ProgressError",
    "ProgressSession",
    "ProgressStatus",
    "ReportedStatus",
    "SequentialTask",
    "TaskCancelled",
    "TaskProgress",
    "UnknownTaskError",
    "run_task",
]

if TYPE_CHECKING:
    from .exceptions import ProgressError, TaskCancelled, UnknownTaskError
    from .handles import ParallelTask, SequentialTask
    from .session import ProgressSession
    from .status import ProgressStatus, ReportedStatus
    from .work import TaskProgress, run_task


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'progress_ui' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
