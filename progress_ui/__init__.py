"""django-progress-ui: live, animated progress bars for long-running Django work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ParallelTask",
    "ProgressError",
    "ProgressSession",
    "ProgressStatus",
    "SequentialTask",
    "UnknownTaskError",
]

if TYPE_CHECKING:
    from .exceptions import ProgressError, UnknownTaskError
    from .session import ProgressSession
    from .status import ProgressStatus
    from .tasks import ParallelTask, SequentialTask


def __getattr__(name: str) -> Any:
    # Lazy, so `import progress_ui` (e.g. from INSTALLED_APPS) never touches
    # Django settings before they are configured.
    if name == "ProgressSession":
        from .session import ProgressSession

        return ProgressSession
    if name == "ProgressStatus":
        from .status import ProgressStatus

        return ProgressStatus
    if name in ("SequentialTask", "ParallelTask"):
        from . import tasks

        return getattr(tasks, name)
    if name in ("ProgressError", "UnknownTaskError"):
        from . import exceptions

        return getattr(exceptions, name)
    raise AttributeError(f"module 'progress_ui' has no attribute {name!r}")
