"""Errors raised by progress_ui, and the rule for what an error may show a user."""

from __future__ import annotations

from progress_ui.core.validation import clean_text


class ProgressError(Exception):
    """Raise this from a task to show its message to the user.

    Any other exception is shown as ``PROGRESS_UI["GENERIC_ERROR_MESSAGE"]``:
    its text may carry internals (SQL, paths, secrets) and is only logged.
    """


class TaskCancelled(Exception):
    """Raised in the work by ``update()``, ``iterate()``, ``check_cancelled()`` and
    ``start()`` once its task was cancelled (``ProgressSession.cancel``): the work
    stops at its next step. Not an error: the task shows as cancelled."""


class StillRunning(Exception):
    """Raised by a task runner's wrapper around ``exc``, an exception that ends
    this attempt of the work but not the task (a retry will run it again): the
    task stays RUNNING, this process stops answering for it, and
    ``work.run_task`` re-raises ``exc`` itself."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(exc)
        self.exc = exc


class CacheUnavailable(Exception):
    """The progress cache could not be read or written: a connection, timeout or
    read-only-replica error of Redis, an ``OSError``, a database error (the cause is
    chained). Views answer it with 503 and a short text; any other exception is a
    bug and propagates."""


class UnknownTaskError(KeyError, ValueError):
    """A task id that is not part of the session. Catchable as KeyError or ValueError."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown task"


def user_message(exc: BaseException, *, generic: str, max_length: int) -> str:
    """The text a browser may see for ``exc`` (never a traceback)."""
    if isinstance(exc, ProgressError):
        try:
            text = str(exc)
        except Exception:  # a broken __str__ must not leave the task running
            text = ""
        if text.strip():
            return clean_text(text, max_length)
    return clean_text(generic, max_length)
