"""Ending open streams when the server shuts down, so a rolling restart moves
viewers to another process in seconds.

On SIGTERM uvicorn and gunicorn stop accepting connections, then wait for the
open responses to end: a progress stream may last an hour
(``MAX_STREAM_DURATION``), so without help the process lingers until its
graceful timeout (``--timeout-graceful-shutdown``, ``--graceful-timeout``) and
then cuts every stream without a word. Neither tells the application before it
waits (uvicorn sends the ASGI ``lifespan.shutdown`` event only after the
responses ended). So :func:`end_streams_on_signals` chains a handler in front of
the server's own for SIGTERM and SIGINT: it calls :func:`begin`, then the
server's handler, whose shutdown goes on as before. :func:`begin` tells every
hub (``progress_ui.streaming.hub``, one per event loop) to end its streams: each
ends with a reconnect hint (SSE ``retry:``, the NDJSON retry line), the server
finds its responses over and exits, and the clients connect again, to a process
that is not stopping.

Python lets only the main thread install a signal handler. The ASGI stream view
calls :func:`end_streams_on_signals` on its first stream (uvicorn runs its event
loop in the main thread); a WSGI application calls it once in ``wsgi.py``
(gunicorn loads the application in each worker's main thread, after installing
its own handlers). Without a server handler in place (the default action),
nothing is installed: there is no graceful shutdown to shorten.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

#: The signals servers shut down gracefully on.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stoppable(Protocol):
    def stop_streams(self) -> None:
        """End the streams (called from any thread, once)."""


class _State:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.targets: weakref.WeakSet[Any] = weakref.WeakSet()
        #: Signal number -> the handler ours replaced (and calls).
        self.previous: dict[int, Callable[[int, FrameType | None], Any]] = {}


_state = _State()


def stopping() -> bool:
    """True once this process began shutting down (:func:`begin`)."""
    return _state.stopping.is_set()


def register(target: Stoppable) -> None:
    """Have :func:`begin` call ``target.stop_streams()`` (kept by weak reference);
    at once if the shutdown already began."""
    with _state.lock:
        _state.targets.add(target)
    if stopping():
        target.stop_streams()


def begin() -> None:
    """The server is shutting down: end every open stream with a reconnect hint,
    and every stream opened from now on right after its first message."""
    with _state.lock:
        if _state.stopping.is_set():
            return
        _state.stopping.set()
        targets = list(_state.targets)
    for target in targets:
        with contextlib.suppress(Exception):  # a closed loop: nothing to end there
            target.stop_streams()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    begin()
    previous = _state.previous.get(signum)
    if previous is not None:
        previous(signum, frame)


def end_streams_on_signals() -> bool:
    """Chain :func:`begin` in front of the server's SIGTERM and SIGINT handlers
    (see the module docstring). Call it in the main thread of each server
    process, once the server has installed its handlers; calling it again, or
    from another thread, does nothing. True if a handler of ours is in place."""
    if threading.current_thread() is not threading.main_thread():
        return False
    installed = False
    for signum in SIGNALS:
        current = signal.getsignal(signum)
        if current is _on_signal:
            installed = True
            continue
        if not callable(current) or current is signal.default_int_handler:
            # SIG_DFL, SIG_IGN, not set from Python, or Python's own Ctrl-C: no
            # server is shutting down gracefully on this signal.
            continue
        _state.previous[signum] = current
        signal.signal(signum, _on_signal)
        installed = True
    return installed
