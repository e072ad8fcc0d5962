"""The threads of streams, through asgiref's public API: giving back the thread
Django keeps for an ASGI stream, and a thread of the hub's own for sync work.

**The request thread.**
Django runs each ASGI request in an asgiref ``ThreadSensitiveContext``: the
first thread-sensitive ``sync_to_async`` call of the request starts a one-thread
executor that lives until the response ends. Django itself makes such calls
before any view runs (the ``request_started`` handlers, every
``MiddlewareMixin`` middleware; the async ORM and session backends make more),
so even an async view holds that thread. For a page it is a few milliseconds;
for a stream, an idle OS thread per open stream for as long as an hour.

Wrap the ASGI application with :func:`release_stream_threads` and each HTTP
request runs its thread-sensitive work on a :class:`RequestThread` of its own
(asgiref's public ``ThreadSensitiveContext(executor=...)``, asgiref 3.13 and
later). A progress stream calls :func:`release_request_thread` before its first
message: the thread closes its database connections (they are per thread) and
goes back to a small pool of idle threads, from which the next request's
thread-sensitive work takes one (so a request starts no thread unless all are
busy: Django's own contexts start one per request). Anything thread-sensitive
later in the request (``response.close()`` at the end) takes a thread again,
until the request ends. Without the wrapper, or with an older asgiref, nothing
changes: each open stream keeps its thread, as any Django ASGI response does::

    # asgi.py
    from django.core.asgi import get_asgi_application
    from progress_ui.streaming.threads import release_stream_threads

    application = release_stream_threads(get_asgi_application())

**The hub's sync thread.** A hub's pollers read caches other than Redis through
Django's thread-sensitive ``aget_many``. Outside any request that goes to
asgiref's one process-wide thread, which may be the very thread waiting for the
hub (sync code run with ``sync_to_async`` that iterates a WSGI stream): a
deadlock. :func:`sync_work_on` sends the pollers' calls to a thread of the hub's
own instead (asgiref 3.13 and later).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Executor, Future
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from queue import SimpleQueue
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

from progress_ui.streaming import direct

P = ParamSpec("P")
R = TypeVar("R")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: asgiref lets a context run on a given executor from 3.13 on.
SUPPORTED = "executor" in inspect.signature(ThreadSensitiveContext).parameters

_request_thread: ContextVar[RequestThread | None] = ContextVar(
    "progress_ui_request_thread", default=None
)


class _Return:
    """Put after a request's work: the worker then goes back to the idle ones."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Worker:
    """A thread that runs the calls put in its queue, one at a time: lent to one
    request at a time (:class:`RequestThread`), then kept for the next one."""

    def __init__(self) -> None:
        self.queue: SimpleQueue[_Item | _Return | None] = SimpleQueue()
        # A daemon: an idle worker must not keep the process from exiting.
        self.thread = threading.Thread(target=self._run, name="progress_ui request", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, _Return):
                item.done.set()
                if not _idle.keep(self):
                    return
                continue
            self._call(*item)
            del item  # the call's arguments and result are not kept while idle

    @staticmethod
    def _call(
        future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)


class _IdleWorkers:
    """The workers no request holds, ready for the next one: a request's thread is
    lent, not started (starting a thread costs the event loop's thread far more
    than handing work to one, and hundreds of new streams a second each needed
    one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workers: list[_Worker] = []

    def take(self) -> _Worker:
        with self.lock:
            if self.workers:
                return self.workers.pop()
        return _Worker()

    def keep(self, worker: _Worker) -> bool:
        """Keep ``worker`` for the next request; False when enough are idle
        (the worker ends)."""
        with self.lock:
            if len(self.workers) < _MAX_IDLE:
                self.workers.append(worker)
                return True
        return False

    def forget(self) -> None:
        # After a fork: the parent's threads are not there.
        self.lock = threading.Lock()
        self.workers = []


#: Idle workers kept at most.
_MAX_IDLE = 16
_idle = _IdleWorkers()
os.register_at_fork(after_in_child=_idle.forget)


class RequestThread(Executor):
    """The thread of one request's thread-sensitive work: one worker at a time,
    which :meth:`release` gives back (the next call takes another). Workers are
    lent by a pool of idle ones, so a request starts no thread of its own unless
    every worker is busy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._closed = False
        #: Workers taken (for tests and monitoring).
        self.started = 0

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._worker is None:
                self._worker = _idle.take()
                self.started += 1
            self._worker.queue.put((future, fn, args, kwargs))
        return future

    @property
    def alive(self) -> bool:
        """True while a worker thread is there (taken and not released)."""
        return self._worker is not None

    def release(self) -> None:
        """Give the current worker back once the work given to it is done."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.queue.put(_Return())

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            back = _Return()
            worker.queue.put(back)
            if wait:
                back.done.wait()


def release_stream_threads(application: ASGIApp) -> ASGIApp:
    """``application`` with the thread of each HTTP request in hand, so a stream
    can give it back (see the module docstring). Returns ``application``
    itself with an asgiref older than 3.13.

    When ``application`` is Django's own handler (``get_asgi_application()``),
    each request's ``send`` is kept too, so an SSE stream's messages can be
    written to it directly by its session's poller (``streaming.direct``)."""
    if not SUPPORTED:
        return application
    direct_send = isinstance(application, ASGIHandler)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await application(scope, receive, send)
            return
        thread = RequestThread()
        token = _request_thread.set(thread)
        kept = direct.keep_send(send) if direct_send else None
        try:
            # Django's own ThreadSensitiveContext, inside, finds this one and
            # leaves it in charge.
            async with ThreadSensitiveContext(executor=thread):
                await application(scope, receive, send)
        finally:
            if kept is not None:
                direct.forget_send(kept)
            _request_thread.reset(token)
            thread.shutdown(wait=False)

    return app


async def release_request_thread() -> bool:
    """Close the request thread's database connections and let it end, once the
    response's headers are decided; True if there was one to release (only
    under :func:`release_stream_threads`)."""
    thread = _request_thread.get()
    if thread is None or not thread.alive:
        return False
    # Thread-sensitive: runs in that very thread, whose connections these are.
    await sync_to_async(connections.close_all)()
    thread.release()
    return True


def sync_work_on(executor: Executor) -> AbstractAsyncContextManager[object]:
    """``async with sync_work_on(executor)``: thread-sensitive ``sync_to_async``
    calls in the block (and in tasks it starts, while it lasts) run on
    ``executor``, which must run one call at a time on one thread. With an
    asgiref older than 3.13, it changes nothing."""
    if SUPPORTED:
        return ThreadSensitiveContext(executor=executor)
    return contextlib.nullcontext()
