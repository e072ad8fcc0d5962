"""Class-based view mixins: start work on POST and show its progress, or show an
existing session's progress by id.

    def import_products(session, path):  # a module-level function: workers import it
        for row in session.iterate("products", load_rows(path)):
            ...

    class ImportView(StartProgressMixin, TemplateView):
        template_name = "import.html"
        progress_tasks = {"products": "Import products"}
        progress_job = import_products

        def get_progress_job_kwargs(self):
            return {"path": self.request.POST["path"]}

The page template renders ``{% progress_session progress_session %}`` (or
``<c-progress.session :session="progress_session" />``) when ``progress_session``
is in the context. A POST from htmx (django-htmx's ``request.htmx``) gets just the
component back. A GET of the page shows the session this visitor last started
there while the cache keeps it (``progress_resume``), so a reload keeps the bar.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.decorators import method_decorator
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.csrf import csrf_protect
from django.views.generic import TemplateView
from django.views.generic.base import ContextMixin, View

from progress_ui.access import ProgressNotFound, aget_readable_session, get_readable_session
from progress_ui.conf import current as current_settings
from progress_ui.contrib.threads import QueueUnavailable, get_runner, submit_to_threads
from progress_ui.core.validation import log_id
from progress_ui.engine.session import ProgressSession
from progress_ui.engine.store import CacheUnavailable
from progress_ui.engine.work import job_path
from progress_ui.render.components import from_htmx, render_session
from progress_ui.responses import (
    keep_out_of_request_log,
    make_private,
    not_found_response,
    unavailable_response,
)
from progress_ui.streaming.outage import cache_failed

if TYPE_CHECKING:
    _Base = View
    _ContextBase = ContextMixin
else:
    _Base = object
    _ContextBase = object

logger = logging.getLogger("progress_ui")

__all__ = [
    "ProgressSessionMixin",
    "ProgressSessionView",
    "SessionLookupMixin",
    "StartProgressMixin",
]


def _missing(view: object, attribute: str, example: str) -> ImproperlyConfigured:
    name = type(view).__name__
    return ImproperlyConfigured(
        f"{name} is missing the {attribute!r} attribute. Define {name}.{attribute} = "
        f"{example} or override {name}.get_{attribute}()."
    )


class _ProgressRenderMixin(_ContextBase):
    """Shared by both mixins: how the component is rendered."""

    request: HttpRequest
    #: Heading shown above the bars ("" for none).
    progress_title: str = ""
    #: Context variable that holds the ``ProgressSession``.
    progress_context_name: str = "progress_session"
    #: Show a Cancel button while the session runs (``progress_ui:cancel``).
    progress_cancellable: bool = False
    #: Where the browser goes once the session completes (a URL of this site),
    #: or override :meth:`get_progress_success_url`.
    progress_success_url: str | None = None
    #: The page's title shows the percent while the session runs, then its outcome.
    progress_tab_title: bool = False
    #: A "Notify me when done" button: a browser notification when the session ends.
    progress_notify: bool = False

    def get_progress_title(self) -> str:
        return self.progress_title

    def get_progress_success_url(self, session: ProgressSession) -> str | None:
        """Where ``progress_ui.js`` sends the browser once ``session`` completes
        (after the ``progress:complete`` event); None stays on the page. URLs of
        other sites are ignored (``url_has_allowed_host_and_scheme``)."""
        return self.progress_success_url

    def get_progress_refresh_url(self, session: ProgressSession) -> str | None:
        """Where a browser without JavaScript reloads the progress; None lets the
        component choose (this page for GET, else the HTML fragment endpoint)."""
        return None

    def render_progress_component(self, session: ProgressSession) -> HttpResponse:
        """Just the component (the response to an htmx request)."""
        html = render_session(
            session,
            request=self.request,
            title=self.get_progress_title(),
            refresh_url=self.get_progress_refresh_url(session),
            cancellable=self.get_progress_cancellable(),
            success_url=self.get_progress_success_url(session),
            tab_title=self.progress_tab_title,
            notify=self.progress_notify,
        )
        return HttpResponse(html)

    def get_progress_cancellable(self) -> bool:
        """Whether the component shows a Cancel button while the session runs."""
        return self.progress_cancellable

    def get_progress_context(self, session: ProgressSession) -> dict[str, Any]:
        return {
            self.progress_context_name: session,
            "progress_title": self.get_progress_title(),
            "progress_refresh_url": self.get_progress_refresh_url(session) or "",
            "progress_cancellable": self.get_progress_cancellable(),
            "progress_success_url": self.get_progress_success_url(session) or "",
            "progress_tab_title": self.progress_tab_title,
            "progress_notify": self.progress_notify,
        }


class StartProgressMixin(_ProgressRenderMixin, _Base):
    """On POST (CSRF-protected): create a session owned by this visitor, hand
    ``progress_job(session, **get_progress_job_kwargs())`` to the runner
    (``PROGRESS_UI["RUNNER"]``: threads, Django Tasks or Celery), and render the
    page with the component (or only the component for an htmx request).

    Combine with a view that has ``get_context_data`` and ``render_to_response``
    (``TemplateView``, ``FormView``...).
    """

    #: Task id -> display name, or override :meth:`get_progress_tasks`.
    progress_tasks: dict[str, str] | None = None
    #: Task id -> weight in the overall percent (equal when None).
    progress_weights: dict[str, float] | None = None
    #: The job: a module-level function ``job(session, **kwargs)`` or its dotted
    #: path; a worker process imports it by name. Or override :meth:`get_progress_job`.
    progress_job: Callable[..., object] | str | None = None
    #: Where the job runs: "threads", "django_tasks", "celery" or a dotted path
    #: to ``submit(session, job, kwargs)``; None means ``PROGRESS_UI["RUNNER"]``.
    progress_runner: str | None = None
    #: Executor of the "threads" runner; None means the shared pool.
    progress_executor: Executor | None = None
    #: Shown on the bars, and answered (``503`` when the queue cannot be reached,
    #: else ``500``), when the runner could not take the job.
    progress_start_error_message: str | Promise = gettext_lazy(
        "The work could not be started. Please try again later."
    )
    #: ``Retry-After`` (seconds) of that ``503``.
    progress_start_retry_after: int = 5
    #: A GET of the page shows the session this visitor last started on it (by
    #: path, in their Django session) while the cache keeps it: a reload keeps
    #: the bar, running or just finished. False: a GET always shows a fresh page.
    progress_resume: bool = True
    progress_session: ProgressSession | None = None

    @method_decorator(csrf_protect)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return super().dispatch(request, *args, **kwargs)

    def get_progress_tasks(self) -> dict[str, str]:
        if self.progress_tasks is None:
            raise _missing(self, "progress_tasks", "{'task_id': 'Display name'}")
        return dict(self.progress_tasks)

    def get_progress_job(self) -> Callable[..., object] | str:
        if self.progress_job is None:
            raise _missing(
                self, "progress_job", "my_job (a module-level function my_job(session, **kwargs))"
            )
        job = self.progress_job
        # A function set as a class attribute reads as a method of the view.
        return job.__func__ if inspect.ismethod(job) and job.__self__ is self else job

    def get_progress_job_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the job (JSON-serialisable for task queues)."""
        return {}

    def get_progress_runner(self) -> str:
        return self.progress_runner or current_settings().RUNNER

    def get_progress_weights(self) -> dict[str, float] | None:
        return self.progress_weights

    def create_progress_session(self) -> ProgressSession:
        """A new session readable only by this visitor (user or browser session)."""
        return ProgressSession.create(
            self.get_progress_tasks(), request=self.request, weights=self.get_progress_weights()
        )

    def submit_progress_job(self, session: ProgressSession) -> object:
        """Hand the job to the runner; returns what the runner returns (a
        ``Future``, a Django ``TaskResult``, a Celery ``AsyncResult``)."""
        # Resolved here, in the request, so a misconfiguration fails loudly
        # instead of inside a worker.
        path = job_path(self.get_progress_job())
        kwargs = self.get_progress_job_kwargs()
        runner = self.get_progress_runner()
        if runner == "threads":
            return submit_to_threads(session, path, kwargs, self.progress_executor)
        return get_runner(runner)(session, path, kwargs)

    def check_progress_start(self) -> None:
        """Raise ``ImproperlyConfigured`` before any session exists if the job or
        the runner cannot be resolved (no session is left behind)."""
        job_path(self.get_progress_job())
        runner = self.get_progress_runner()
        if runner != "threads":
            get_runner(runner)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """The page; with the visitor's session of this page, if there is one
        (``progress_resume``), so that it keeps showing (and streaming)."""
        session = self.resumed_progress_session() if self.progress_resume else None
        if session is None:
            parent = getattr(super(), "get", None)
            if parent is None:  # a view that has no page of its own to show
                return self.http_method_not_allowed(request, *args, **kwargs)
            page: HttpResponseBase = parent(request, *args, **kwargs)
            return page
        self.progress_session = session
        if from_htmx(request):
            return make_private(self.render_progress_component(session))
        context = self.get_context_data(**kwargs, **self.get_progress_context(session))
        response: HttpResponse = self.render_to_response(context)  # type: ignore[attr-defined]
        return make_private(response)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.check_progress_start()
        try:
            session = self.create_progress_session()
        except CacheUnavailable as exc:
            logger.warning("progress_ui: cache unavailable, nothing started: %s", exc)
            return self.progress_start_refused(exc, temporary=True, retry_after=2)
        self.progress_session = session
        try:
            self.submit_progress_job(session)
        except Exception as exc:
            return self.progress_start_failed(session, exc)
        if self.progress_resume:
            remember_page_session(request, session)
        try:
            if from_htmx(request):
                return make_private(self.render_progress_component(session))
            context = self.get_context_data(**kwargs, **self.get_progress_context(session))
            response: HttpResponse = self.render_to_response(context)  # type: ignore[attr-defined]
        except ImproperlyConfigured as exc:
            # E.g. progress_ui.urls not included: the work runs, but without this
            # answer the page would not change at all.
            logger.error("progress_ui: the page of a started session cannot render", exc_info=exc)
            return self.progress_start_refused(exc, temporary=False)
        return make_private(response)

    def resumed_progress_session(self) -> ProgressSession | None:
        """The session this visitor last started on this page (by path), while
        the cache keeps it and the access rules let them read it."""
        return resumed_page_session(self.request)

    def progress_start_failed(self, session: ProgressSession, exc: Exception) -> HttpResponse:
        """The runner refused the job (arguments it cannot serialise, a queue that
        cannot be reached...): the session's bars end in error, so it is never
        left pending, and the visitor gets a short answer (the details are
        logged). Override to answer otherwise."""
        temporary = isinstance(exc, QueueUnavailable | OSError | OperationalError | InterfaceError)
        logger.error(
            "progress_ui: the job of session %s could not be started",
            log_id(session.session_id),
            exc_info=exc,
        )
        message = str(self.progress_start_error_message)
        for task_id in session.tasks:
            try:
                session.error(task_id, message)
            except CacheUnavailable:
                break  # (STRICT_WRITES) the session will expire, unstarted
        return self.progress_start_refused(
            exc, temporary=temporary, retry_after=self.progress_start_retry_after
        )

    def progress_start_refused(
        self, exc: Exception, *, temporary: bool, retry_after: int = 0
    ) -> HttpResponse:
        """The answer to a start that failed (logged already): ``503`` with
        ``Retry-After`` when it may work soon, else ``500``. For htmx, a short
        translated alert ("Could not start: ...", class ``pui-start-error``) that
        ``progress_ui.js`` (htmx 2) and htmx 4 swap in like a success; else
        ``progress_start_error_message`` as plain text. The exception shows
        only under ``DEBUG``."""
        detail = _exception_text(exc) if django_settings.DEBUG else ""
        if from_htmx(self.request):
            if detail:
                reason = detail
            elif temporary:
                reason = gettext("the service is unavailable, please try again in a moment.")
            else:
                reason = gettext("an error occurred on the server.")
            body = format_html(
                '<p class="pui-start-error" role="alert">{}</p>',
                gettext("Could not start: %(reason)s") % {"reason": reason},
            )
            response = HttpResponse(body, status=503 if temporary else 500)
            response[START_FAILED_HEADER] = "1"
        else:
            text = str(self.progress_start_error_message) + (f"\n\n{detail}" if detail else "")
            response = HttpResponse(
                text, status=503 if temporary else 500, content_type="text/plain; charset=utf-8"
            )
        if temporary:
            response["Retry-After"] = str(int(retry_after or self.progress_start_retry_after))
        # Logged by the caller, once: not again by Django's request logger.
        keep_out_of_request_log(self.request)
        make_private(response)
        return response


#: Marks a failed start's answer to htmx: ``progress_ui.js`` lets htmx 2 swap it in.
START_FAILED_HEADER = "Progress-UI-Start-Failed"
#: Key of the page path -> session id map in the visitor's Django session data.
PAGES_FIELD = "_progress_ui_pages"
#: Pages remembered per visitor for ``progress_resume`` (the oldest is forgotten).
MAX_PAGES = 20


def _exception_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _pages(request: HttpRequest) -> dict[str, str] | None:
    data = getattr(request, "session", None)
    if data is None:
        return None  # no Django sessions: nothing is remembered
    pages = data.get(PAGES_FIELD)
    return dict(pages) if isinstance(pages, dict) else {}


def remember_page_session(request: HttpRequest, session: ProgressSession) -> None:
    """Remember ``session`` as the one this visitor started on this page."""
    pages = _pages(request)
    if pages is None:
        return
    pages.pop(request.path, None)
    pages[request.path] = session.session_id
    while len(pages) > MAX_PAGES:
        pages.pop(next(iter(pages)))
    request.session[PAGES_FIELD] = pages


def resumed_page_session(request: HttpRequest) -> ProgressSession | None:
    """The session this visitor last started on this page, if the cache still
    has it and the access rules let them read it; a vanished one is forgotten.
    The id alone grants nothing (``get_readable_session``)."""
    pages = _pages(request)
    session_id = (pages or {}).get(request.path)
    if pages is None or not isinstance(session_id, str):
        return None
    try:
        return get_readable_session(request, session_id)
    except ProgressNotFound:
        del pages[request.path]
        request.session[PAGES_FIELD] = pages
        return None
    except CacheUnavailable as exc:
        # The page renders without the bar; the next reload tries again.
        logger.warning("progress_ui: cache unavailable, the page shows no progress: %s", exc)
        return None


class SessionLookupMixin:
    """Finds the session named by the URL kwarg ``session_url_kwarg``. Anyone the
    access rules refuse gets the same 404 as for a missing, expired or malformed
    id (``get_readable_session``). Shared by the streaming views and the pages."""

    request: HttpRequest
    kwargs: dict[str, Any]

    #: URL keyword argument holding the session id.
    session_url_kwarg: str = "session_id"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if getattr(self, "view_is_async", False):
            # An async view (the stream views under ASGI): the same answers, awaited.
            return self._adispatch(request, *args, **kwargs)  # type: ignore[return-value]
        try:
            response: HttpResponseBase = super().dispatch(  # type: ignore[misc]
                request, *args, **kwargs
            )
        except (ProgressNotFound, CacheUnavailable) as exc:
            return self._refusal(exc)
        # Every answer depends on who asks: never stored by a shared cache.
        return make_private(response)

    async def _adispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            response: HttpResponseBase = await super().dispatch(  # type: ignore[misc]
                request, *args, **kwargs
            )
        except (ProgressNotFound, CacheUnavailable) as exc:
            return self._refusal(exc)
        return make_private(response)

    def _refusal(self, exc: ProgressNotFound | CacheUnavailable) -> HttpResponseBase:
        if isinstance(exc, ProgressNotFound):
            return not_found_response(exc.session_id, self.request)
        # Progress is unknown, not missing: answer 503 so clients retry. The outage
        # is logged once per process, not once per request.
        cache_failed(exc, "a progress page")
        return unavailable_response(self.request)

    def get_session_id(self) -> str:
        kwarg = self.session_url_kwarg
        if kwarg not in self.kwargs:
            name = type(self).__name__
            raise ImproperlyConfigured(
                f"{name} expects the URL kwarg {kwarg!r} (its 'session_url_kwarg' "
                f"attribute); set {name}.session_url_kwarg or override "
                f"{name}.get_session_id()."
            )
        return str(self.kwargs[kwarg])

    def get_progress_session(self) -> ProgressSession:
        """The session if this request may read it, else ``Http404`` (override to
        change the lookup; to change who may read, prefer
        ``PROGRESS_UI["PERMISSION_FUNCTION"]``)."""
        return get_readable_session(self.request, self.get_session_id())

    async def aget_progress_session(self) -> ProgressSession:
        """Async :meth:`get_progress_session` (the same rule, read with Django's
        async API: ``access.aget_readable_session``), for async views. A
        subclass that overrides :meth:`get_progress_session` gets its own lookup,
        run through ``sync_to_async``."""
        if type(self).get_progress_session is not SessionLookupMixin.get_progress_session:
            return await sync_to_async(self.get_progress_session)()
        return await aget_readable_session(self.request, self.get_session_id())


class ProgressSessionMixin(SessionLookupMixin, _ProgressRenderMixin, _Base):
    """Renders the page (or, for htmx, just the component) of an existing session."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session = self.get_progress_session()
        if from_htmx(request):
            return self.render_progress_component(session)
        context = self.get_context_data(**kwargs, **self.get_progress_context(session))
        response: HttpResponse = self.render_to_response(context)  # type: ignore[attr-defined]
        return response


class ProgressSessionView(ProgressSessionMixin, TemplateView):
    """A minimal page for one session (``progress_ui/page.html``); subclass and
    set ``template_name`` to use your own layout."""

    template_name = "progress_ui/page.html"
