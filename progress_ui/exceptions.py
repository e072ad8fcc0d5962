"""Errors raised by progress_ui, and the rule for what an error may show a user."""

from __future__ import annotations

from .validation import clean_text


class ProgressError(Exception):
    """Raise this from a task to show its message to the user.

    Any other exception is shown as ``PROGRESS_UI["GENERIC_ERROR_MESSAGE"]``:
    its text may carry internals (SQL, paths, secrets) and is only logged.
    """


class UnknownTaskError(KeyError, ValueError):
    """A task id that is not part of the session. Catchable as KeyError or ValueError."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown task"


def user_message(exc: BaseException, *, generic: str, max_length: int) -> str:
    """The text a browser may see for ``exc`` (never a traceback)."""
    if isinstance(exc, ProgressError) and str(exc).strip():
        return clean_text(str(exc), max_length)
    return clean_text(generic, max_length)
