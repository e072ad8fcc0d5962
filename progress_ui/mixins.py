"""Class-based view mixins: start work on POST and show its progress, or show an
existing session's progress by id.

    class ImportView(StartProgressMixin, TemplateView):
        template_name = "import.html"
        progress_tasks = {"products": "Import products"}

        def start_progress_work(self, session):
            for row in session.iterate("products", rows()):
                ...

The page template renders ``{% progress_session progress_session %}`` (or
``<c-progress.session :session="progress_session" />``) when ``progress_session``
is in the context. A POST from htmx (django-htmx's ``request.htmx``) gets just the
component back.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect
from django.views.generic import TemplateView
from django.views.generic.base import ContextMixin, View

from .access import get_readable_session
from .rendering import render_session
from .session import ProgressSession
from .store import CacheUnavailable

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
    "default_executor",
]

#: Worker threads of the default executor (one per running session's work).
DEFAULT_MAX_WORKERS = 8
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def default_executor() -> Executor:
    """The process-wide thread pool that runs ``start_progress_work`` unless a
    view sets ``progress_executor`` or overrides ``get_progress_executor()``.

    Threads suit development and small sites; for work that must survive a
    server restart, return an executor that hands the session id to a task queue.
    """
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=DEFAULT_MAX_WORKERS, thread_name_prefix="progress_ui"
            )
        return _executor


def unavailable_response() -> HttpResponse:
    """503 while the progress cache cannot be reached: no traceback, try again soon."""
    response = HttpResponse(
        "Progress is unavailable right now.",
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = "2"
    response["Cache-Control"] = "no-store"
    return response


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


class _ProgressRenderMixin(_ContextBase):
    """Shared by both mixins: how the component is rendered."""

    request: HttpRequest
    #: Heading shown above the bars ("" for none).
    progress_title: str = ""
    #: Context variable that holds the ``ProgressSession``.
    progress_context_name: str = "progress_session"

    def get_progress_title(self) -> str:
        return self.progress_title

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
        )
        return HttpResponse(html)

    def get_progress_context(self, session: ProgressSession) -> dict[str, Any]:
        return {
            self.progress_context_name: session,
            "progress_title": self.get_progress_title(),
            "progress_refresh_url": self.get_progress_refresh_url(session) or "",
        }


class StartProgressMixin(_ProgressRenderMixin, _Base):
    """On POST (CSRF-protected): create a session owned by this visitor, run
    ``start_progress_work(session)`` in the background, and render the page
    with the component (or only the component for an htmx request).

    Combine with a view that has ``get_context_data`` and ``render_to_response``
    (``TemplateView``, ``FormView``...).
    """

    #: Task id -> display name, or override :meth:`get_progress_tasks`.
    progress_tasks: dict[str, str] | None = None
    #: Executor that runs the work; None means :func:`default_executor`.
    progress_executor: Executor | None = None

    progress_session: ProgressSession | None = None

    @method_decorator(csrf_protect)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return super().dispatch(request, *args, **kwargs)

    def get_progress_tasks(self) -> dict[str, str]:
        if self.progress_tasks is None:
            name = type(self).__name__
            raise ImproperlyConfigured(
                f"{name} is missing the 'progress_tasks' attribute. Define "
                f"{name}.progress_tasks = {{'task_id': 'Display name'}} or override "
                f"{name}.get_progress_tasks()."
            )
        return dict(self.progress_tasks)

    def get_progress_executor(self) -> Executor:
        return self.progress_executor or default_executor()

    def create_progress_session(self) -> ProgressSession:
        """A new session readable only by this visitor (user or browser session)."""
        return ProgressSession.create(self.get_progress_tasks(), request=self.request)

    def start_progress_work(self, session: ProgressSession) -> None:
        """Do the work, reporting to ``session``. Runs in the executor."""
        name = type(self).__name__
        raise ImproperlyConfigured(
            f"{name} must override {name}.start_progress_work(self, session) to do "
            "the work that the progress bars report."
        )

    def run_progress_work(self, session: ProgressSession) -> None:
        """Executor entry point: run the work; if it raises, fail the tasks it
        left unfinished, so the bars never wait forever."""
        try:
            self.start_progress_work(session)
        except Exception as exc:
            statuses = {t: s["status"] for t, s in session.to_dict()["tasks"].items()}
            unfinished = [t for t, s in statuses.items() if s not in ("complete", "error")]
            for task_id in unfinished:
                session.fail(task_id, exc)
            if not unfinished:
                logger.exception("progress_ui work of session %s failed", session.session_id)

    def submit_progress_work(self, session: ProgressSession) -> Future[None]:
        """Hand :meth:`run_progress_work` to the executor."""
        # Checked here, in the request, so a missing override fails loudly
        # instead of inside a worker thread.
        if type(self).start_progress_work is StartProgressMixin.start_progress_work:
            self.start_progress_work(session)
        request_thread = threading.get_ident()

        def run() -> None:
            try:
                self.run_progress_work(session)
            finally:
                # A worker thread's database connections are not closed by the
                # request cycle; an executor that runs inline shares the request's.
                if threading.get_ident() != request_thread:
                    close_old_connections()

        return self.get_progress_executor().submit(run)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session = self.create_progress_session()
        self.progress_session = session
        self.submit_progress_work(session)
        if _is_htmx(request):
            return self.render_progress_component(session)
        context = self.get_context_data(**kwargs, **self.get_progress_context(session))
        response: HttpResponse = self.render_to_response(context)  # type: ignore[attr-defined]
        return response


class SessionLookupMixin:
    """Finds the session named by the URL kwarg ``session_url_kwarg``. Anyone the
    access rules refuse gets the same 404 as for a missing, expired or malformed
    id (``get_readable_session``). Shared by the streaming views and the pages."""

    request: HttpRequest
    kwargs: dict[str, Any]

    #: URL keyword argument holding the session id.
    session_url_kwarg: str = "session_id"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc, no-any-return]
        except CacheUnavailable as exc:
            # Progress is unknown, not missing: answer 503 so clients retry.
            logger.warning("progress_ui: cache unavailable for %s: %s", request.path, exc)
            return unavailable_response()

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


class ProgressSessionMixin(SessionLookupMixin, _ProgressRenderMixin, _Base):
    """Renders the page (or, for htmx, just the component) of an existing session."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session = self.get_progress_session()
        if _is_htmx(request):
            return self.render_progress_component(session)
        context = self.get_context_data(**kwargs, **self.get_progress_context(session))
        response: HttpResponse = self.render_to_response(context)  # type: ignore[attr-defined]
        return response


class ProgressSessionView(ProgressSessionMixin, TemplateView):
    """A minimal page for one session (``progress_ui/page.html``); subclass and
    set ``template_name`` to use your own layout."""

    template_name = "progress_ui/page.html"
