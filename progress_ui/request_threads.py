"""Giving back the thread Django's ASGI handler keeps for a streaming request.

Django runs every ASGI request in an asgiref ``ThreadSensitiveContext``: the
first thread-sensitive ``sync_to_async`` call of the request (a sync middleware,
the session lookup) starts a one-thread executor that lives until the response
ends. For a page that is a few milliseconds; for an SSE stream it is an idle OS
thread (and its stack) per open stream, for as long as an hour.

Once a stream's headers are decided, nothing thread-bound runs until it ends, so
:func:`release_request_thread` closes that thread's database connections (they
are per thread) and lets the thread go. If something thread-sensitive runs later
(``response.close()`` at the end, say), asgiref starts a fresh thread for it
then, which Django stops when the request ends. Relies on asgiref's
``SyncToAsync.thread_sensitive_context`` and ``context_to_thread_executor``;
with an asgiref that has neither, it does nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import connections


async def release_request_thread() -> bool:
    """Stop the request's thread-sensitive worker thread, if it has one. True if
    one was stopped."""
    context_var: Any = getattr(SyncToAsync, "thread_sensitive_context", None)
    executors: Any = getattr(SyncToAsync, "context_to_thread_executor", None)
    if context_var is None or executors is None:
        return False
    context = context_var.get(None)
    if context is None or getattr(context, "_executor", None) is not None:
        return False  # not a per-request context (one given its own executor)
    executor = executors.get(context)
    if executor is None:
        return False
    # Runs in that very thread: its connections are the ones to close.
    await sync_to_async(connections.close_all)()
    if executors.get(context) is executor:
        del executors[context]
        executor.shutdown(wait=False)
    return True


async def without_request_thread(stream: AsyncIterator[str]) -> AsyncIterator[bytes]:
    """``stream`` as UTF-8, with the request's thread released before the first
    message. (Handed bytes, ``StreamingHttpResponse`` skips looking up its
    charset for every chunk of every stream.)"""
    await release_request_thread()
    try:
        async for chunk in stream:
            yield chunk.encode()
    finally:
        # Close it now (leaving the hub at once), not when it is collected.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
