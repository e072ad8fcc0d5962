"""HTTP endpoints of a session: SSE and NDJSON streams, a JSON snapshot, an HTML fragment.

Mount them with ``path("progress/", include("progress_ui.urls"))``. Every view
answers 404 for a malformed, unknown, expired or foreign session id alike (see
``progress_ui.access``), so a stranger cannot tell whether an id exists.

The streaming views are plain sync views that pick their generator by server:
the sync one under WSGI, the async one under ASGI (Django buffers the whole
response when the iterator does not match the server). Under ASGI all viewers of
a session in one process share one poller (``progress_ui.hub``) and, unless
``render_partials`` is overridden, one rendering per change; under WSGI the same
holds for the process's sync viewers, whose streams run on one background event
loop (``progress_ui.hub_thread``). Beyond ``MAX_STREAMS`` open streams a process
answers 503 (``progress_ui.stream_limits``), and a WSGI stream lasts at most
``WSGI_MAX_STREAM_DURATION``: the component then polls instead.

Customise by subclassing: attributes (``poll_interval``, ``max_duration``,
``session_url_kwarg``, ...) and the matching ``get_*()`` methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from . import rendering, sse
from .access import get_readable_session
from .conf import current as current_settings
from .follow import ajson_lines, follow_snapshots, json_lines
from .group_streams import agroup_stream, group_stream
from .hub import follow
from .hub_thread import client_probe, iterate_in_loop, watching_client
from .mixins import SessionLookupMixin
from .request_threads import without_request_thread
from .responses import too_many_streams
from .session import ProgressSession
from .snapshot import SessionSnapshot
from .sse import Render
from .sse_streams import asse_stream, default_render, poll_after_max_duration, sse_stream
from .stream_limits import RETRY_AFTER, HeldAsyncStream, HeldStream, take_slot
from .validation import is_valid_session_id


def is_asgi(request: HttpRequest) -> bool:
    """True when ``request`` is being served by Django's ASGI handler."""
    return isinstance(request, ASGIRequest)


class StreamView(SessionLookupMixin, View):
    """Base of the streaming views: headers, server detection, stream options."""

    http_method_names = ["get", "options"]
    content_type = "text/plain; charset=utf-8"
    #: Seconds between cache reads (None: ``PROGRESS_UI["POLL_INTERVAL"]``).
    poll_interval: float | None = None
    #: Longest a response stays open (None: ``PROGRESS_UI["MAX_STREAM_DURATION"]``;
    #: under WSGI at most ``WSGI_MAX_STREAM_DURATION``).
    max_duration: float | None = None
    #: Extra response headers. ``X-Accel-Buffering: no`` stops nginx buffering.
    stream_headers: dict[str, str] = {"X-Accel-Buffering": "no"}

    def get_poll_interval(self) -> float | None:
        return self.poll_interval

    def get_max_duration(self) -> float | None:
        return self.max_duration

    def get_stream_headers(self) -> dict[str, str]:
        return dict(self.stream_headers)

    def get_content_type(self) -> str:
        return self.content_type

    def get_sync_stream(self, session: ProgressSession) -> Iterator[str]:
        raise NotImplementedError(
            f"{type(self).__name__} must define get_sync_stream() and get_async_stream()."
        )

    def get_async_stream(self, session: ProgressSession) -> AsyncIterator[str]:
        raise NotImplementedError(
            f"{type(self).__name__} must define get_sync_stream() and get_async_stream()."
        )

    def get_sync_max_duration(self) -> float:
        """Under WSGI: the shorter of ``get_max_duration()`` (or
        ``MAX_STREAM_DURATION``) and ``WSGI_MAX_STREAM_DURATION``, since each
        open stream holds a server thread."""
        conf = current_settings()
        limit = self.get_max_duration()
        longest = conf.MAX_STREAM_DURATION if limit is None else limit
        return min(longest, conf.WSGI_MAX_STREAM_DURATION)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        session = self.get_progress_session()  # 404 first: strangers learn nothing
        asgi = is_asgi(request)
        slot = take_slot(asgi=asgi)
        if slot is None:
            return too_many_streams(RETRY_AFTER)
        content: HeldStream | HeldAsyncStream
        try:
            if asgi:
                # Django keeps a thread per ASGI request until its response ends:
                # a stream gives it back (see progress_ui.request_threads).
                stream = without_request_thread(self.get_async_stream(session))
                content = HeldAsyncStream(stream, slot)
            else:
                # Under gunicorn a stream also ends soon after its client leaves,
                # not at its next write (progress_ui.hub_thread.watching_client).
                with watching_client(client_probe(request.META)):
                    content = HeldStream(self.get_sync_stream(session), slot)
        except BaseException:
            slot.release()
            raise
        # GZipMiddleware would compress (and delay) the stream; it only compresses
        # for clients that accept gzip, so make this request not say so.
        request.META.pop("HTTP_ACCEPT_ENCODING", None)
        response = StreamingHttpResponse(content, content_type=self.get_content_type())
        for name, value in self.get_stream_headers().items():
            response[name] = value
        return response


class SSEView(StreamView):
    """``text/event-stream`` of rendered fragments for htmx (see ``progress_ui.sse``).

    A reconnect (``Last-Event-ID``) gets the current state at once; a session that
    has finished gets its final state and ``done``. A session that is gone, or
    that this client may not read, is a 404 like everywhere else: finished
    sessions stay readable for ``FINISHED_TTL`` (10 minutes by default), far
    longer than a browser waits before reconnecting.
    """

    content_type = sse.CONTENT_TYPE
    #: Share one poller per session among this process's viewers (False: each
    #: viewer reads the cache itself).
    shared_poller = True

    def get_last_event_id(self) -> str | None:
        return self.request.headers.get("Last-Event-ID")

    def render_partials(self, snapshot: SessionSnapshot) -> str:
        """The payload of one message (override to send other markup)."""
        return default_render(snapshot)

    def get_render(self) -> Render:
        # Unless a subclass overrides render_partials, pass the module function:
        # the hub shares one rendering among viewers passing the same function,
        # and a bound method of this per-request view is never the same.
        if type(self).render_partials is SSEView.render_partials:
            return default_render
        return self.render_partials

    def get_sync_stream(self, session: ProgressSession) -> Iterator[str]:
        limit = self.get_sync_max_duration()
        stream = sse_stream(
            session,
            last_event_id=self.get_last_event_id(),
            poll_interval=self.get_poll_interval(),
            max_duration=limit,
            render=self.get_render(),
            shared=self.shared_poller,
        )
        # Past its limit, the page polls instead of taking a thread again.
        return poll_after_max_duration(stream, limit)

    def get_async_stream(self, session: ProgressSession) -> AsyncIterator[str]:
        return asse_stream(
            session,
            last_event_id=self.get_last_event_id(),
            poll_interval=self.get_poll_interval(),
            max_duration=self.get_max_duration(),
            render=self.get_render(),
            shared=self.shared_poller,
        )


class NDJSONView(StreamView):
    """``application/x-ndjson``: one JSON snapshot per line, each when the state
    changed (a heartbeat repeats the last one), until the session finishes. A
    failure ends the stream with ``{"error": "<safe message>"}``."""

    content_type = "application/x-ndjson"
    shared_poller = True

    def get_sync_stream(self, session: ProgressSession) -> Iterator[str]:
        poll, limit = self.get_poll_interval(), self.get_sync_max_duration()
        if not self.shared_poller:
            items = follow_snapshots(session, poll_interval=poll, max_duration=limit)
            return json_lines(session.session_id, items)

        async def lines() -> AsyncIterator[str]:
            # follow() needs the running loop: called on the hub loop, once
            # iteration starts; aclosing leaves the hub as soon as this is closed.
            items = follow(session, poll_interval=poll, max_duration=limit)
            stream = ajson_lines(session.session_id, items)
            try:
                async for line in stream:
                    yield line
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()

        # On this process's hub loop: one poller per session for all sync viewers.
        return iterate_in_loop(lines)

    def get_async_stream(self, session: ProgressSession) -> AsyncIterator[str]:
        poll, limit = self.get_poll_interval(), self.get_max_duration()

        async def lines() -> AsyncIterator[str]:
            # follow() needs the running loop: call it once iteration starts.
            items = follow(
                session, poll_interval=poll, max_duration=limit, shared=self.shared_poller
            )
            async for line in ajson_lines(session.session_id, items):
                yield line

        return lines()


@method_decorator(never_cache, name="dispatch")
class JSONView(SessionLookupMixin, View):
    """The current snapshot as JSON, for polling clients and scripts."""

    http_method_names = ["get", "head", "options"]

    def get_snapshot(self, session: ProgressSession) -> SessionSnapshot:
        return session.to_dict()

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return JsonResponse(self.get_snapshot(self.get_progress_session()))


@method_decorator(never_cache, name="dispatch")
class FragmentView(SessionLookupMixin, View):
    """The whole component as HTML (``rendering.render_session``): what a page
    shows, for no-JS refreshes and for inserting a component after a POST.
    ``?transport=poll`` renders it without an SSE connection (the polling
    fallback of ``progress_ui.js``)."""

    http_method_names = ["get", "head", "options"]

    def get_transport(self) -> str:
        return "poll" if self.request.GET.get("transport") == "poll" else "sse"

    def render_session(self, snapshot: SessionSnapshot) -> str:
        html = rendering.render_session(
            snapshot, request=self.request, transport=self.get_transport()
        )
        return str(html)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        snapshot = self.get_progress_session().to_dict()
        return HttpResponse(self.render_session(snapshot))


@method_decorator(never_cache, name="dispatch")
@method_decorator(csrf_protect, name="dispatch")
class CancelView(SessionLookupMixin, View):
    """POST: cancel every unfinished task of the session (``ProgressSession.cancel``),
    for whoever may read it; everyone else gets the usual 404. Answers htmx with
    the component, a form post by going back to ``next`` (a local URL), and
    anything else with the JSON snapshot."""

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session = self.get_progress_session()
        session.cancel()
        if request.headers.get("HX-Request") == "true":
            return HttpResponse(rendering.render_session(session, request=request))
        next_url = request.POST.get("next", "")
        if next_url and url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return HttpResponseRedirect(next_url)
        return JsonResponse(session.to_dict())


class GroupSSEView(SSEView):
    """One SSE stream for several sessions: ``events/?session=<id>&session=<id>``
    (``progress_ui:group_sse``), so a page showing many sessions holds one
    connection (browsers open at most 6 per origin over HTTP/1.1). Messages are
    those of :class:`SSEView`, for whichever session changed; ``done`` comes once
    every session has settled (``progress_ui.group_streams``).

    No id, or more than ``MAX_GROUP_SESSIONS``, is a 400 (a mistake in the page,
    not a question about any session). Each id is checked as the single-session
    views check theirs: if any one is missing, expired, malformed or not this
    visitor's, the whole request gets the same 404 as a missing id. A group holds
    one place among the process's ``MAX_STREAMS``.
    """

    #: Query parameter naming the sessions (repeated).
    session_query_param = "session"
    #: Set by :meth:`get` before the stream opens.
    progress_sessions: list[ProgressSession]

    def get_session_ids(self) -> list[str]:
        """The requested ids, in order, each once."""
        return list(dict.fromkeys(self.request.GET.getlist(self.session_query_param)))

    def get_max_sessions(self) -> int:
        return current_settings().MAX_GROUP_SESSIONS

    def get_progress_sessions(self, session_ids: list[str]) -> list[ProgressSession]:
        """Every session if this request may read them all, else ``Http404``."""
        # Malformed ids first: a group holding one is refused before any cache read.
        ordered = sorted(session_ids, key=is_valid_session_id)
        found = {sid: get_readable_session(self.request, sid) for sid in ordered}
        return [found[sid] for sid in session_ids]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        session_ids, limit = self.get_session_ids(), self.get_max_sessions()
        if not 1 <= len(session_ids) <= limit:
            return HttpResponse(
                f"Name 1 to {limit} progress sessions: ?{self.session_query_param}=<id>"
                f"&{self.session_query_param}=<id>",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        self.progress_sessions = self.get_progress_sessions(session_ids)
        return super().get(request, *args, **kwargs)

    def get_progress_session(self) -> ProgressSession:
        # StreamView.get asks for one session before opening the stream; the
        # group's lookups were all done in get(), so this only hands it the first.
        return self.progress_sessions[0]

    def get_sync_stream(self, session: ProgressSession) -> Iterator[str]:
        limit = self.get_sync_max_duration()
        stream = group_stream(
            self.progress_sessions,
            last_event_id=self.get_last_event_id(),
            poll_interval=self.get_poll_interval(),
            max_duration=limit,
            render=self.get_render(),
            shared=self.shared_poller,
        )
        # Past its limit, the page polls instead of taking a thread again.
        return poll_after_max_duration(stream, limit)

    def get_async_stream(self, session: ProgressSession) -> AsyncIterator[str]:
        return agroup_stream(
            self.progress_sessions,
            last_event_id=self.get_last_event_id(),
            poll_interval=self.get_poll_interval(),
            max_duration=self.get_max_duration(),
            render=self.get_render(),
            shared=self.shared_poller,
        )
