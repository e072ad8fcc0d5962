"""How many stream places a process and each client hold, and the caps on them.

A WSGI server gives each open stream a worker thread for as long as it lasts:
100 streams on a server with 32 threads left the rest of the site waiting 9 s.
Under ASGI a stream holds no thread, but every change it is sent costs CPU on
the process's one event loop: past about 1,000 viewers of busy sessions one
process saturates its core, and its pages wait (issue 21: one client holding 200
group streams made pages take over 10 s). So each process counts the places its
open streams (SSE, group SSE and NDJSON) take:

- under ASGI a stream takes one place per session it follows: a group stream
  of 20 sessions takes 20 (it costs the loop as much as 20 single streams);
  under WSGI one place is one server thread, so every stream takes one;
- a process holds at most ``MAX_STREAMS`` places: a stream beyond it gets
  ``503 Service Unavailable`` (``progress_ui.responses.too_many_streams``);
- one client holds at most ``MAX_STREAMS_PER_CLIENT`` places in a process: a
  logged-in user by their owner token, anyone else by IP address (an IPv6
  address by its /64 network): one more gets ``429 Too Many Requests``
  (``progress_ui.responses.too_many_streams_for_client``), so one client cannot
  take a whole process.

Both answers carry ``Retry-After``, and ``progress_ui.js`` polls that component
instead, as for any stream that cannot connect. A stream gives its places back
when it ends or when the server closes it (the client went away).
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

from progress_ui.conf import current as current_settings
from progress_ui.streaming.direct import current_send
from progress_ui.streaming.threads import release_request_thread

logger = logging.getLogger("progress_ui")

#: ``MAX_STREAMS`` when it is None. Under WSGI each stream holds a server thread:
#: 8 leaves most threads to pages with ``--threads 16`` or more.
WSGI_DEFAULT_MAX_STREAMS = 8
#: Under ASGI a stream holds no thread, but costs the loop's CPU for every
#: change it is sent. One uvicorn process keeps up with about 1,000 viewers of
#: sessions changing 10 times a second, at 98 % of its core (docs: costs); half
#: of that leaves pages about half the core in that worst case.
ASGI_DEFAULT_MAX_STREAMS = 500
#: ``Retry-After`` (seconds) of the 503 and 429 beyond the caps.
RETRY_AFTER = 10
#: At most one warning per this many seconds about refused streams (each cap).
_WARN_EVERY = 60.0


class Refused(enum.Enum):
    """Why a stream got no place: its process (503) or its client (429) is full."""

    PROCESS = 503
    CLIENT = 429


class _Open:
    def __init__(self) -> None:
        #: Taking a place is check-then-add, so it holds the lock. Giving one back
        #: is ``set.discard``, atomic on its own: it may run from a finaliser
        #: (``__del__``), which must never wait for a lock its thread may hold.
        self.lock = threading.Lock()
        self.slots: set[Slot] = set()
        self.warned_at = {Refused.PROCESS: -_WARN_EVERY, Refused.CLIENT: -_WARN_EVERY}


def max_streams(*, asgi: bool) -> int:
    """The cap of this process, in places: ``MAX_STREAMS``, or the server's default."""
    limit = current_settings().MAX_STREAMS
    if limit is not None:
        return limit
    return ASGI_DEFAULT_MAX_STREAMS if asgi else WSGI_DEFAULT_MAX_STREAMS


def open_streams() -> int:
    """Places taken by the streams open in this process right now (a group
    stream takes one per session)."""
    return sum(slot.places for slot in list(_open.slots))


def client_of(user_token: str | None, remote_addr: str | None) -> str:
    """Who a stream counts against under ``MAX_STREAMS_PER_CLIENT``: the owner
    token of a logged-in user, else the IP address (an IPv6 address by its /64
    network: one machine has many)."""
    if user_token is not None:
        return user_token
    try:
        address = ipaddress.ip_address((remote_addr or "").strip())
    except ValueError:
        return "ip:unknown"
    if address.version == 6:
        return f"ip:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"ip:{address}"


class Slot:
    """One open stream's places; :meth:`release` may be called any number of
    times, from any thread."""

    __slots__ = ("__weakref__", "client", "places")

    def __init__(self, places: int, client: str | None) -> None:
        self.places = places
        self.client = client

    def release(self) -> None:
        _open.slots.discard(self)

    @property
    def held(self) -> bool:
        return self in _open.slots


_open = _Open()


def take_slot(*, asgi: bool, places: int = 1, client: str | None = None) -> Slot | Refused:
    """``places`` places for one more stream of ``client`` (see the module
    docstring), or why there are none."""
    limit = max_streams(asgi=asgi)
    per_client = current_settings().MAX_STREAMS_PER_CLIENT
    with _open.lock:
        held = list(_open.slots)
        refused: Refused | None = None
        if sum(slot.places for slot in held) + places > limit:
            refused = Refused.PROCESS
        elif per_client and client is not None:
            mine = sum(slot.places for slot in held if slot.client == client)
            if mine + places > per_client:
                refused = Refused.CLIENT
        if refused is None:
            slot = Slot(places, client)
            _open.slots.add(slot)
            return slot
        now = time.monotonic()
        warn = now - _open.warned_at[refused] >= _WARN_EVERY
        if warn:
            _open.warned_at[refused] = now
    if warn and refused is Refused.PROCESS:
        logger.warning(
            "progress_ui: %d stream places taken in this process (MAX_STREAMS): new "
            "streams get 503 and their components poll",
            limit,
        )
    elif warn:
        logger.warning(
            "progress_ui: a client holds %d stream places in this process "
            "(MAX_STREAMS_PER_CLIENT): its new streams get 429 and their components poll",
            per_client,
        )
    return refused


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
    Django's ASGI handler closes it after a client disconnect too). It hands
    Django bytes (so ``StreamingHttpResponse`` does not look up its charset for
    every chunk), and gives the request's thread back before the first one
    (``progress_ui.streaming.threads``)."""

    def __init__(self, stream: AsyncIterator[str], slot: Slot) -> None:
        self._stream, self._slot = stream, slot
        self._started = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            if not self._started:
                self._started = True
                await release_request_thread()
                # An SSE stream writes its messages to the client itself when it
                # can (streaming.direct): Django has sent the headers by now.
                opener = getattr(self._stream, "open_with_send", None)
                if opener is not None:
                    self._stream = opener(current_send())
            return (await anext(self._stream)).encode()
        except BaseException:  # the end, a failure, or cancellation
            self._slot.release()
            raise

    def close(self) -> None:
        self._slot.release()

    def __del__(self) -> None:
        self._slot.release()
