"""The hub for sync (WSGI) viewers: one event loop thread per process.

A WSGI server gives every open stream a thread of its own; if each of those
threads followed its session itself, every viewer would read the cache and
render every change for itself. Instead a WSGI stream is the very async
pipeline an ASGI server runs (``sse_stream``, ``group_stream``,
``ndjson_stream``), run on one background event loop per process
(:func:`hub_loop`) through one adapter (:func:`iterate_in_loop`), so the WSGI
viewers of a session share that loop's hub (``progress_ui.streaming.hub``): one
poller (woken by Redis pushes) and one rendering per change, as ASGI viewers of
a process do. The worker thread only waits for its next message.

The async iterator runs one step at a time, each step a task of its own on the
loop: it must not yield inside ``asyncio.timeout()`` or a task group (nothing in
this package does).

Sync work the hub's pollers hand to a thread (``sync_to_async``: reads of
caches other than Redis) runs in the hub's own thread
(``progress_ui.streaming.threads.sync_work_on``), never in one that may be
waiting for this loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.utils import translation

from progress_ui.engine.follow import aclose

T = TypeVar("T")

#: Longest a closing stream waits for its async side to leave the hub.
CLOSE_TIMEOUT = 5.0
#: Seconds between checks that a waiting stream's client is still there.
CLIENT_CHECK_INTERVAL = 1.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_owner_pid = 0


def _forget_after_fork() -> None:
    # A forked child has the parent's memory but none of its threads: the loop
    # object is there, its thread is not (and the lock may be held forever).
    global _lock, _loop, _thread, _owner_pid
    _lock, _loop, _thread, _owner_pid = threading.Lock(), None, None, 0


os.register_at_fork(after_in_child=_forget_after_fork)


def hub_loop() -> asyncio.AbstractEventLoop:
    """This process's hub loop, running in a daemon thread started on first use
    (and started again in a forked child, or if it ever stopped)."""
    global _loop, _thread, _owner_pid
    with _lock:
        if _loop is None or _owner_pid != os.getpid() or not _loop.is_running():
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="progress_ui hub", daemon=True)
            thread.start()
            started.wait()
            _loop, _thread, _owner_pid = loop, thread, os.getpid()
        return _loop


class _End:
    """Returned (not raised) at the end: StopAsyncIteration cannot cross a future."""


_END = _End()


def iterate_in_loop(make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """The items of ``make()``, an async iterator run on :func:`hub_loop`, handed
    to the calling thread one at a time (nothing runs before the first is asked
    for). The caller's language stays active on the async side, for what it
    renders. Closing the returned iterator early (the client went away) closes
    the async one on the loop, so it leaves the hub at once; so does a client
    found gone while waiting (see :func:`watching_client`)."""
    loop = hub_loop()
    if threading.current_thread() is _thread:
        raise RuntimeError("iterate_in_loop() would block the hub loop it runs on.")
    language = translation.get_language()
    gone = _client_gone.get()
    stream = make()
    steps: list[asyncio.Task[Any]] = []

    async def next_item() -> T | _End:
        task = asyncio.current_task()
        steps[:] = [task] if task is not None else []
        with translation.override(language):
            try:
                return await anext(stream)
            except StopAsyncIteration:
                return _END

    async def close() -> None:
        # A step still running (its client left while it waited) ends first:
        # an async generator cannot be closed while it runs.
        running = [step for step in steps if not step.done()]
        for step in running:
            step.cancel()
        if running:
            await asyncio.wait(running)
        await aclose(stream)

    def wait(future: Future[T | _End]) -> T | _End:
        """The step's result, or the end once the client is gone."""
        if gone is None:
            return future.result()
        while True:
            try:
                return future.result(CLIENT_CHECK_INTERVAL)
            except FutureTimeout:
                if gone():
                    return _END

    def generate() -> Iterator[T]:
        try:
            while True:
                item = wait(asyncio.run_coroutine_threadsafe(next_item(), loop))
                if isinstance(item, _End):
                    return
                yield item
        finally:
            future = asyncio.run_coroutine_threadsafe(close(), loop)
            try:
                future.result(CLOSE_TIMEOUT)
            except Exception:  # closing must not raise into the server
                future.cancel()

    return generate()


# -- noticing a client that left -----------------------------------------------

_client_gone: ContextVar[Callable[[], bool] | None] = ContextVar(
    "progress_ui_client_gone", default=None
)


@contextmanager
def watching_client(gone: Callable[[], bool] | None) -> Iterator[None]:
    """Streams made by :func:`iterate_in_loop` in this block end once ``gone()``
    is true, checked every ``CLIENT_CHECK_INTERVAL`` seconds while they wait for
    a message. Without it, a WSGI server only finds a client gone when a write
    fails: at the next message or heartbeat (``HEARTBEAT_INTERVAL``), which keeps
    the stream's thread, and its place under ``MAX_STREAMS``, that long."""
    token = _client_gone.set(gone)
    try:
        yield
    finally:
        _client_gone.reset(token)


def client_probe(environ: Mapping[str, Any]) -> Callable[[], bool] | None:
    """``gone()`` for the client of a WSGI request, when the server shows its
    socket (gunicorn's ``gunicorn.socket``; not over TLS), else None."""
    sock = environ.get("gunicorn.socket")
    if type(sock) is not socket.socket:
        return None
    return lambda: peer_closed(sock)


def peer_closed(sock: socket.socket) -> bool:
    """True once the other end closed (or reset) ``sock``; never blocks. An
    EventSource sends nothing after its request, so anything readable is the
    end of the connection."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return not data
