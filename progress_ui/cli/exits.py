"""The watcher's exit statuses, and the exception that ends a watch with one."""

from __future__ import annotations

EXIT_COMPLETE = 0
EXIT_ERROR = 1
EXIT_CANCELLED = 2
EXIT_GONE = 3
#: The stream or the cache failed, the server sent something that is not a
#: snapshot, or ``--timeout`` passed first.
EXIT_TRANSPORT = 4
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130
#: The reader of our output went away (a closed pipe): 128 + SIGPIPE, as a shell reports it.
EXIT_CLOSED_PIPE = 141


class WatchFailed(Exception):
    """The watch cannot go on; ``code`` is the exit status, the message (one
    line of terminal-safe text) is shown."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
