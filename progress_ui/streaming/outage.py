"""One warning per outage of the progress cache, whoever notices it.

When the cache stops answering, every session poller, open stream and change
feed of a process fails within the same second: a line (let alone a traceback)
from each would bury the log (issue 21 O counted 61 ERROR tracebacks for one
Redis freeze). They all report here instead: the first failure of an outage logs
one WARNING; the others log at DEBUG; the first read that succeeds after it logs
one WARNING saying the cache is back and how long it was gone. Per process: each
server process says it once.

:func:`is_transient` tells such a failure (``CacheUnavailable``, raised by the
store, or chained by the hub) from a bug, which is still logged with its
traceback.
"""

from __future__ import annotations

import logging
import threading
import time

from progress_ui.exceptions import CacheUnavailable

logger = logging.getLogger("progress_ui")


class _Outage:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: ``time.monotonic()`` of the first failure of the current outage.
        self.since: float | None = None
        #: Outages noticed by this process (for tests and monitoring).
        self.count = 0


_outage = _Outage()


def is_transient(exc: BaseException) -> bool:
    """True for a failure that may pass by itself: the cache could not be reached
    (directly, or as the cause of a poller's failure)."""
    return isinstance(exc, CacheUnavailable) or isinstance(exc.__cause__, CacheUnavailable)


def cache_failed(exc: BaseException, where: str) -> None:
    """``where`` (a poller, a stream, the change feed) could not reach the cache."""
    with _outage.lock:
        first = _outage.since is None
        if first:
            _outage.since = time.monotonic()
            _outage.count += 1
    if first:
        logger.warning(
            "progress_ui: the progress cache cannot be reached (%s: %s); open streams end "
            "and browsers reconnect or poll until it is back",
            type(exc).__name__,
            exc,
        )
    else:
        logger.debug("progress_ui: %s: the progress cache is still unreachable: %s", where, exc)


def cache_answered() -> None:
    """A read of the cache succeeded: ends the current outage, if any."""
    if _outage.since is None:  # the usual case: no lock
        return
    with _outage.lock:
        since, _outage.since = _outage.since, None
    if since is not None:
        logger.warning(
            "progress_ui: the progress cache answers again (unreachable for %.1f s)",
            time.monotonic() - since,
        )


def in_outage() -> bool:
    """True between a failure and the next successful read (this process)."""
    return _outage.since is not None


def outages() -> int:
    """Outages this process noticed so far."""
    return _outage.count
