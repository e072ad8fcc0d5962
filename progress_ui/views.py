"""HTTP endpoints of a session: SSE and NDJSON streams, a JSON snapshot, an HTML fragment.

Mount them with ``path("progress/", include("progress_ui.urls"))``. Every view
answers 404 for a malformed, unknown, expired or foreign session id alike (see
``progress_ui.access``), so a stranger cannot tell whether an id exists.

The streaming views are async views with one async pipeline per format
(``progress_ui.streaming``: ``sse_stream``, ``group_stream``, ``ndjson_stream``).
Under ASGI the view checks access with Django's async API and the server
iterates the pipeline on its own event loop, holding no thread (with
``streaming.threads.release_stream_threads``); under WSGI the view hands
the worker thread the same pipeline run on the process's background loop
(``progress_ui.streaming.wsgi_loop``). Either way all viewers of a session in a
process share one poller (``progress_ui.streaming.hub``) and, unless
``render_partials`` is overridden, one rendering per change. Beyond
``MAX_STREAMS`` places a process answers 503, and beyond
``MAX_STREAMS_PER_CLIENT`` places of one client 429 (``progress_ui.streaming.limits``:
under ASGI a group stream takes a place per session), and a WSGI stream lasts at most
``WSGI_MAX_STREAM_DURATION``: the component then polls instead.

Customise by subclassing: attributes (``poll_interval``, ``max_duration``,
``session_url_kwarg``, ...) and the matching ``get_*()`` methods.

The staff pages (:class:`StaffView`, :class:`StaffSessionView`) list the
sessions of the session index and open any of them, for users who hold
``STAFF_PERMISSION``; everyone else gets the 404 of a missing session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db import connections, transaction
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
from django.utils.translation import gettext
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.generic import TemplateView

from progress_ui.access import (
    ProgressNotFound,
    aget_readable_session,
    astream_client,
    get_readable_session,
    is_progress_staff,
    stream_client,
)
from progress_ui.conf import current as current_settings
from progress_ui.core.snapshot import SessionSnapshot
from progress_ui.core.validation import is_valid_session_id
from progress_ui.engine.listing import recent_sessions, supports_listing
from progress_ui.engine.ownership import USER_PREFIX
from progress_ui.engine.session import ProgressSession
from progress_ui.engine.store import CacheUnavailable
from progress_ui.mixins import ProgressSessionView, SessionLookupMixin
from progress_ui.render import components
from progress_ui.render.staff import staff_row
from progress_ui.responses import (
    make_private,
    not_found_response,
    too_many_streams,
    too_many_streams_for_client,
    unavailable_response,
)
from progress_ui.streaming.group_stream import group_stream
from progress_ui.streaming.limits import (
    RETRY_AFTER,
    HeldAsyncStream,
    HeldStream,
    Refused,
    take_slot,
)
from progress_ui.streaming.ndjson_stream import ndjson_stream
from progress_ui.streaming.outage import cache_failed
from progress_ui.streaming.shutdown import end_streams_on_signals
from progress_ui.streaming.sse_stream import default_render, poll_after_max_duration, sse_stream
from progress_ui.streaming.wsgi_loop import client_probe, iterate_in_loop, watching_client
from progress_ui.wire import ndjson, sse
from progress_ui.wire.sse import Render


def is_asgi(request: HttpRequest) -> bool:
    """True when ``request`` is being served by Django's ASGI handler."""
    return isinstance(request, ASGIRequest)


class StreamView(SessionLookupMixin, View):
    """Base of the streaming views: access, the stream cap, headers, and the
    server: ``get()`` is async, and serves ASGI on the server's loop and WSGI
    through ``wsgi_loop`` (Django runs an async view under WSGI in a loop of its
    own; the stream itself runs on the process's hub loop)."""

    http_method_names = ["get", "options"]
    content_type = "text/plain; charset=utf-8"
    #: Seconds between cache reads (None: ``PROGRESS_UI["POLL_INTERVAL"]``).
    poll_interval: float | None = None
    #: Longest a response stays open (None: ``PROGRESS_UI["MAX_STREAM_DURATION"]``;
    #: under WSGI at most ``WSGI_MAX_STREAM_DURATION``).
    max_duration: float | None = None
    #: Extra response headers. ``X-Accel-Buffering: no`` stops nginx buffering.
    stream_headers: dict[str, str] = {"X-Accel-Buffering": "no"}
    #: Set by :meth:`get` before the stream opens: the sessions it follows.
    progress_sessions: list[ProgressSession]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Any]:
        view = super().as_view(**initkwargs)
        # Django refuses async views under ATOMIC_REQUESTS; a stream needs no
        # transaction (it only reads the cache).
        for alias in connections:
            view = transaction.non_atomic_requests(using=alias)(view)
        return view

    def get_poll_interval(self) -> float | None:
        return self.poll_interval

    def get_max_duration(self) -> float | None:
        return self.max_duration

    def get_stream_headers(self) -> dict[str, str]:
        return dict(self.stream_headers)

    def get_content_type(self) -> str:
        return self.content_type

    def get_sync_max_duration(self) -> float:
        """Under WSGI: the shorter of ``get_max_duration()`` (or
        ``MAX_STREAM_DURATION``) and ``WSGI_MAX_STREAM_DURATION``, since each
        open stream holds a server thread."""
        conf = current_settings()
        limit = self.get_max_duration()
        longest = conf.MAX_STREAM_DURATION if limit is None else limit
        return min(longest, conf.WSGI_MAX_STREAM_DURATION)

    def get_progress_sessions(self) -> list[ProgressSession]:
        """The sessions to stream, if this request may read them all, else
        ``Http404`` (sync: under WSGI)."""
        return [self.get_progress_session()]

    async def aget_progress_sessions(self) -> list[ProgressSession]:
        """Async :meth:`get_progress_sessions` (under ASGI)."""
        return [await self.aget_progress_session()]

    def get_stream(self, max_duration: float | None) -> AsyncIterator[str]:
        """The stream of ``self.progress_sessions``: the format's pipeline."""
        raise NotImplementedError(f"{type(self).__name__} must define get_stream().")

    def get_wsgi_stream(self) -> AsyncIterator[str]:
        """The stream under WSGI, where it lasts at most :meth:`get_sync_max_duration`."""
        return self.get_stream(self.get_sync_max_duration())

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        asgi = is_asgi(request)
        if asgi:
            # Open streams end when the server shuts down (in uvicorn's main
            # thread, where signal handlers can be installed; once).
            end_streams_on_signals()
        # 404 first: strangers learn nothing. Under WSGI the lookup runs in the
        # worker thread, on the sync cache client.
        if asgi:
            self.progress_sessions = await self.aget_progress_sessions()
            client = await astream_client(request)
        else:
            self.progress_sessions = await sync_to_async(self.get_progress_sessions)()
            client = await sync_to_async(stream_client)(request)
        # Under ASGI a stream costs the loop per session it follows; under WSGI
        # its one server thread (streaming.limits).
        places = len(self.progress_sessions) if asgi else 1
        slot = take_slot(asgi=asgi, places=places, client=client)
        if slot is Refused.CLIENT:
            return too_many_streams_for_client(RETRY_AFTER, request)
        if slot is Refused.PROCESS:
            return too_many_streams(RETRY_AFTER, request)
        content: HeldStream | HeldAsyncStream
        try:
            if asgi:
                content = HeldAsyncStream(self.get_stream(self.get_max_duration()), slot)
            else:
                # Under gunicorn a stream also ends soon after its client leaves,
                # not at its next write (progress_ui.streaming.wsgi_loop.watching_client).
                with watching_client(client_probe(request.META)):
                    content = HeldStream(iterate_in_loop(self.get_wsgi_stream), slot)
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
    """``text/event-stream`` of rendered fragments for htmx (see ``progress_ui.wire.sse``).

    A reconnect (``Last-Event-ID``) gets the current state at once; a session that
    has finished gets its final state and ``done``. A session that is gone, or
    that this client may not read, is a 404 like everywhere else: finished
    sessions stay readable for ``FINISHED_TTL`` (10 minutes by default), far
    longer than a browser waits before reconnecting.
    """

    content_type = sse.CONTENT_TYPE

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

    def get_stream(self, max_duration: float | None) -> AsyncIterator[str]:
        return sse_stream(
            self.progress_sessions[0],
            last_event_id=self.get_last_event_id(),
            poll_interval=self.get_poll_interval(),
            max_duration=max_duration,
            render=self.get_render(),
        )

    def get_wsgi_stream(self) -> AsyncIterator[str]:
        # Past its limit, the page polls instead of taking a thread again.
        limit = self.get_sync_max_duration()
        return poll_after_max_duration(self.get_stream(limit), limit)


class NDJSONView(StreamView):
    """``application/x-ndjson``: one JSON snapshot per line, each when the state
    changed (a heartbeat repeats the last one), until the session settles. A
    failure ends the stream with ``{"error": "<safe message>"}``."""

    content_type = ndjson.CONTENT_TYPE

    def get_stream(self, max_duration: float | None) -> AsyncIterator[str]:
        return ndjson_stream(
            self.progress_sessions[0],
            poll_interval=self.get_poll_interval(),
            max_duration=max_duration,
        )


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
    """The whole component as HTML (``components.render_session``): what a page
    shows, for no-JS refreshes and for inserting a component after a POST.
    ``?transport=poll`` renders it without an SSE connection (the polling
    fallback of ``progress_ui.js``)."""

    http_method_names = ["get", "head", "options"]

    def get_transport(self) -> str:
        return "poll" if self.request.GET.get("transport") == "poll" else "sse"

    def render_session(self, snapshot: SessionSnapshot) -> str:
        html = components.render_session(
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
    the component's regions (``<hx-partial>`` elements, as a stream message:
    the Cancel form swaps nothing else, so the component keeps its heading and
    options), a form post by going back to ``next`` (a local URL), and anything
    else with the JSON snapshot."""

    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session = self.get_progress_session()
        session.cancel()
        if components.from_htmx(request):
            return HttpResponse(components.render_partials(session.to_dict()))
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
    every session has settled (``progress_ui.streaming.group_stream``).

    No id, or more than ``MAX_GROUP_SESSIONS``, is a 400 (a mistake in the page,
    not a question about any session). Each id is checked as the single-session
    views check theirs: if any one is missing, expired, malformed or not this
    visitor's, the whole request gets the same 404 as a missing id. Under ASGI a
    group takes one place per session among the process's ``MAX_STREAMS`` and its
    client's ``MAX_STREAMS_PER_CLIENT`` (under WSGI one, for its thread).
    """

    #: Query parameter naming the sessions (repeated).
    session_query_param = "session"

    def get_session_ids(self) -> list[str]:
        """The requested ids, in order, each once."""
        return list(dict.fromkeys(self.request.GET.getlist(self.session_query_param)))

    def get_max_sessions(self) -> int:
        return current_settings().MAX_GROUP_SESSIONS

    def get_progress_sessions(self) -> list[ProgressSession]:
        """Every requested session if this request may read them all, else ``Http404``."""
        found = {sid: get_readable_session(self.request, sid) for sid in self._lookup_order()}
        return [found[sid] for sid in self.get_session_ids()]

    async def aget_progress_sessions(self) -> list[ProgressSession]:
        found = {
            sid: await aget_readable_session(self.request, sid) for sid in self._lookup_order()
        }
        return [found[sid] for sid in self.get_session_ids()]

    def _lookup_order(self) -> list[str]:
        # Malformed ids first: a group holding one is refused before any cache read.
        return sorted(self.get_session_ids(), key=is_valid_session_id)

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        count, limit = len(self.get_session_ids()), self.get_max_sessions()
        if not 1 <= count <= limit:
            return HttpResponse(
                f"Name 1 to {limit} progress sessions: ?{self.session_query_param}=<id>"
                f"&{self.session_query_param}=<id>",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        return await super().get(request, *args, **kwargs)

    def get_stream(self, max_duration: float | None) -> AsyncIterator[str]:
        return group_stream(
            self.progress_sessions,
            last_event_id=self.get_last_event_id(),
            poll_interval=self.get_poll_interval(),
            max_duration=max_duration,
            render=self.get_render(),
        )


# -- the staff pages ------------------------------------------------------------------


def user_names(owners: list[str | None]) -> dict[str, str]:
    """Primary key (as in owner tokens) -> user name, for the users among
    ``owners`` that still exist (one query)."""
    user_model = get_user_model()
    keys = []
    for owner in owners:
        if owner is not None and owner.startswith(USER_PREFIX):
            try:  # an owner= token of the site's own may be anything
                keys.append(user_model._meta.pk.to_python(owner.removeprefix(USER_PREFIX)))
            except ValidationError:
                continue
    if not keys:
        return {}
    found = user_model._default_manager.filter(pk__in=keys)
    return {str(user.pk): user.get_username() for user in found}


@method_decorator(never_cache, name="dispatch")
class StaffView(TemplateView):
    """The staff page (``progress_ui:staff``): the sessions of the session index,
    newest first, live and recently finished, ``paginate_by`` to a page, each
    opening the live component with Cancel (:class:`StaffSessionView`).

    While a row's session is pending or running, the page asks for its live
    answer (``?live=1``: ``live_template_name``) every ``live_interval``
    seconds: the status, percent and time left of every row, as
    ``<hx-partial>`` elements htmx applies in place, so an opened component
    and the keyboard focus stay. Once every row has settled the answer stops
    the polling.

    For users who hold ``PROGRESS_UI["STAFF_PERMISSION"]``; everyone else gets
    the 404 of a missing session. 503 while the cache cannot be reached."""

    http_method_names = ["get", "head", "options"]
    template_name = "progress_ui/staff.html"
    live_template_name = "progress_ui/staff_rows.html"
    #: Sessions per page.
    paginate_by = 50
    #: Seconds between two refreshes of the rows while one runs.
    live_interval = 5

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not is_progress_staff(request):
            return not_found_response(None, request)
        try:
            response = super().dispatch(request, *args, **kwargs)
        except CacheUnavailable as exc:
            cache_failed(exc, "the staff page")
            return unavailable_response(request)
        return make_private(response)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        listed = recent_sessions()
        page = Paginator(listed, self.paginate_by).get_page(self.request.GET.get("page"))
        users = user_names([entry.owner for entry in page])
        rows = [staff_row(entry, entry.session().to_dict(), users) for entry in page]
        running = not all(row.settled for row in rows)
        live_url = f"{self.request.path}?live=1&page={page.number}" if running else ""
        return super().get_context_data(
            **kwargs,
            title=gettext("Progress sessions"),
            page=page,
            rows=rows,
            index_on=supports_listing(),
            live_url=live_url,
            live_interval=self.live_interval,
        )

    def get_template_names(self) -> list[str]:
        if self.request.GET.get("live"):
            return [self.live_template_name]
        return super().get_template_names()


@method_decorator(never_cache, name="dispatch")
class StaffSessionView(ProgressSessionView):
    """One session for staff (``progress_ui:staff_session``): the live component
    with Cancel, as a page, or alone for htmx (the staff page opens it in its
    row). Only for holders of ``STAFF_PERMISSION``: the same 404 as a missing
    id for everyone else, before any cache read."""

    template_name = "progress_ui/staff.html"
    progress_cancellable = True

    def get_progress_title(self) -> str:
        return gettext("Progress session")

    def get_progress_session(self) -> ProgressSession:
        if not is_progress_staff(self.request):
            raise ProgressNotFound(self.get_session_id())
        return super().get_progress_session()
