"""How many streams a process keeps open, and the cap on them.

A WSGI server gives each open stream a worker thread for as long as it lasts:
100 streams on a server with 32 threads left the rest of the site waiting 9 s.
So each process counts its open streams (SSE and NDJSON) and answers a stream
beyond ``MAX_STREAMS`` with ``503 Service Unavailable`` and ``Retry-After``
(``progress_ui.responses.too_many_streams``): ``progress_ui.js`` then polls that
component instead, and pages keep their threads. A stream gives its place back
when it ends or when the server closes it (the client went away).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

from .conf import current as current_settings

logger = logging.getLogger("progress_ui")

#: ``MAX_STREAMS`` when it is None. Under WSGI each stream holds a server thread:
#: 8 leaves most threads to pages with ``--threads 16`` or more.
WSGI_DEFAULT_MAX_STREAMS = 8
#: Under ASGI a stream holds no thread, only memory.
ASGI_DEFAULT_MAX_STREAMS = 10_000
#: ``Retry-After`` (seconds) of the 503 beyond the cap.
RETRY_AFTER = 10
#: At most one warning per this many seconds about refused streams.
_WARN_EVERY = 60.0


class _Open:
    def __init__(self) -> None:
        #: Taking a place is check-then-add, so it holds the lock. Giving one back
        #: is ``set.discard``, atomic on its own: it may run from a finaliser
        #: (``__del__``), which must never wait for a lock its thread may hold.
        self.lock = threading.Lock()
        self.slots: set[Slot] = set()
        self.warned_at = -_WARN_EVERY


def max_streams(*, asgi: bool) -> int:
    """The cap of this process: ``MAX_STREAMS``, or the server's default."""
    limit = current_settings().MAX_STREAMS
    if limit is not None:
        return limit
    return ASGI_DEFAULT_MAX_STREAMS if asgi else WSGI_DEFAULT_MAX_STREAMS


def open_streams() -> int:
    """Streams open in this process right now."""
    return len(_open.slots)


class Slot:
    """One open stream's place; :meth:`release` may be called any number of
    times, from any thread."""

    def release(self) -> None:
        _open.slots.discard(self)

    @property
    def held(self) -> bool:
        return self in _open.slots


_open = _Open()


def take_slot(*, asgi: bool) -> Slot | None:
    """A place for one more stream, or None when the process is at its cap."""
    limit = max_streams(asgi=asgi)
    with _open.lock:
        if len(_open.slots) < limit:
            slot = Slot()
            _open.slots.add(slot)
            return slot
        now = time.monotonic()
        warn = now - _open.warned_at >= _WARN_EVERY
        if warn:
            _open.warned_at = now
    if warn:
        logger.warning(
            "progress_ui: %d streams open in this process (MAX_STREAMS): new ones get 503 "
            "and their components poll",
            limit,
        )
    return None


class HeldStream:
    """A sync stream that gives its slot back when it ends or is closed. A WSGI
    server closes the response (and Django this) when the stream ends, fails or
    loses its client, even if it was never started."""

    def __init__(self, stream: Iterator[str], slot: Slot) -> None:
        self._stream, self._slot = stream, slot

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return next(self._stream)
        except BaseException:  # the end (StopIteration) or a failure
            self._slot.release()
            raise

    def close(self) -> None:
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            self._slot.release()

    def __del__(self) -> None:
        # A server that drops a response without closing it (PEP 3333 says
        # it must close it) would otherwise lose the place for good.
        self._slot.release()


class HeldAsyncStream:
    """An async stream that gives its slot back when it ends, or when Django
    calls ``close()`` once the response is over (finished, failed or abandoned:
    Django's ASGI handler closes it after a client disconnect too)."""

    def __init__(self, stream: AsyncIterator[bytes], slot: Slot) -> None:
        self._stream, self._slot = stream, slot

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._stream)
        except BaseException:  # the end, a failure, or cancellation
            self._slot.release()
            raise

    def close(self) -> None:
        self._slot.release()

    def __del__(self) -> None:
        self._slot.release()
