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
component back.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect
from django.views.generic import TemplateView
from django.views.generic.base import ContextMixin, View

from .access import ProgressNotFound, get_readable_session
from .conf import current as current_settings
from .rendering import render_session
from .responses import make_private, not_found_response, unavailable_response
from .runners import get_runner, submit_to_threads
from .session import ProgressSession
from .store import CacheUnavailable
from .work import job_path

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


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


class _ProgressRenderMixin(_ContextBase):
    """Shared by both mixins: how the component is rendered."""

    request: HttpRequest
    #: Heading shown above the bars ("" for none).
    progress_title: str = ""
    #: Context variable that holds the ``ProgressSession``.
    progress_context_name: str = "progress_session"
    #: Show a Cancel button while the session runs (``progress_ui:cancel``).
    progress_cancellable: bool = False

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
            cancellable=self.get_progress_cancellable(),
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

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        session = self.create_progress_session()
        self.progress_session = session
        self.submit_progress_job(session)
        if _is_htmx(request):
            return make_private(self.render_progress_component(session))
        context = self.get_context_data(**kwargs, **self.get_progress_context(session))
        response: HttpResponse = self.render_to_response(context)  # type: ignore[attr-defined]
        return make_private(response)


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
            response: HttpResponseBase = super().dispatch(  # type: ignore[misc]
                request, *args, **kwargs
            )
        except ProgressNotFound as exc:
            return not_found_response(exc.session_id)
        except CacheUnavailable as exc:
            # Progress is unknown, not missing: answer 503 so clients retry.
            logger.warning("progress_ui: cache unavailable: %s", exc)
            return unavailable_response()
        # Every answer depends on who asks: never stored by a shared cache.
        return make_private(response)

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
