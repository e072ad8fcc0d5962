"""Demo views: a page with job buttons, one POST endpoint per job, and a page per
session (the no-JS refresh target and what a reload shows)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html_join
from django.views.generic import TemplateView

from progress_ui import ProgressSession
from progress_ui.access import can_read
from progress_ui.mixins import ProgressSessionView, StartProgressMixin
from progress_ui.render.components import render_group, render_session

from .jobs import ALL_AT_ONCE, GROUP_SIZE, JOBS, Job, report_key

RUNNER_LABELS = {
    "django_tasks": "a Django Tasks worker (db_worker), a separate process",
    "threads": "background threads of the web server process",
    "celery": "a Celery worker",
}

#: How many of a visitor's recent sessions the index page shows again.
RECENT = 6


def remember(request: HttpRequest, session: ProgressSession, title: str) -> None:
    """Keep the visitor's recent sessions in their Django session, so a reload
    of the page shows them again (running ones reconnect, finished ones show
    their final state)."""
    recent = [r for r in request.session.get("demo_sessions", []) if r[0] != session.session_id]
    request.session["demo_sessions"] = [[session.session_id, title], *recent][:RECENT]


def recent_sessions(request: HttpRequest) -> list[tuple[str, ProgressSession]]:
    found = []
    for session_id, title in request.session.get("demo_sessions", []):
        session = ProgressSession.get(session_id)
        if session is not None and can_read(request, session):
            found.append((title, session))
    return found


def finished_text(request: HttpRequest) -> str:
    done = sum(1 for _, s in recent_sessions(request) if s.to_dict()["status"] == "complete")
    return f"{done} of your recent jobs completed." if done else "No job has completed yet."


def finished(request: HttpRequest) -> HttpResponse:
    """GET /finished/: the sentence of the index's "completed" line, which htmx
    fetches again on every ``progress:complete`` event (no script of the demo's)."""
    return HttpResponse(finished_text(request))


def page_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "finished_text": finished_text(request),
        "jobs": {
            key: job for key, job in JOBS.items() if job.listed or settings.DEMO_SHOW_ALL_JOBS
        },
        "htmx_version": settings.PROGRESS_UI.get("HTMX_VERSION", 2),
        "runner": RUNNER_LABELS.get(settings.PROGRESS_UI["RUNNER"], settings.PROGRESS_UI["RUNNER"]),
        "recent": recent_sessions(request),
    }


class IndexView(TemplateView):
    template_name = "demo/index.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **page_context(self.request)}


class StartJobView(StartProgressMixin, TemplateView):
    """POST /start/<job>/: runs one job from ``demo.jobs.JOBS``."""

    template_name = "demo/index.html"
    http_method_names = ["post"]
    progress_cancellable = True

    @property
    def job(self) -> Job:
        try:
            return JOBS[self.kwargs["job"]]
        except KeyError:
            raise Http404("No such job.") from None

    def get_progress_tasks(self) -> dict[str, str]:
        return self.job.tasks

    def get_progress_weights(self) -> dict[str, float] | None:
        return self.job.weights

    def get_progress_title(self) -> str:
        return self.job.title

    def get_progress_refresh_url(self, session: ProgressSession) -> str:
        return reverse("index")

    def create_progress_session(self) -> ProgressSession:
        session = super().create_progress_session()
        remember(self.request, session, self.job.title)
        return session

    def get_progress_job(self) -> Callable[[ProgressSession], None]:
        return self.job.run

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **page_context(self.request)}


class StartAllView(StartJobView):
    """POST /start-all/: several jobs at once, one session (and stream) each."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        sessions: list[ProgressSession] = []
        for key in ALL_AT_ONCE:
            view = StartJobView(request=request, kwargs={"job": key}, args=())
            session = view.create_progress_session()
            view.submit_progress_job(session)
            sessions.append(session)
        components = format_html_join(
            "\n",
            "{}",
            (
                (
                    render_session(
                        session,
                        request=request,
                        title=JOBS[key].title,
                        refresh_url=self.get_progress_refresh_url(session),
                    ),
                )
                for key, session in zip(ALL_AT_ONCE, sessions, strict=True)
            ),
        )
        if getattr(request, "htmx", False):
            return HttpResponse(components)
        return self.render_to_response(self.get_context_data())


class StartGroupView(StartJobView):
    """POST /start/group/: eight batches at once, shown over one SSE connection
    (``render_group``): with a stream each, a browser would queue the 7th and 8th
    (and every other request of the page) behind HTTP/1.1's 6 connections."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        sessions: list[tuple[str, ProgressSession]] = []
        for n in range(1, GROUP_SIZE + 1):
            view = StartJobView(request=request, kwargs={"job": "batch"}, args=())
            session = view.create_progress_session()
            view.submit_progress_job(session)
            sessions.append((f"Batch {n}", session))
        if getattr(request, "htmx", False):
            return HttpResponse(render_group(sessions, request=request, cancellable=True))
        return self.render_to_response(self.get_context_data())


class SessionPageView(ProgressSessionView):
    """GET /session/<id>/: one session on the demo layout."""

    template_name = "demo/session.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **page_context(self.request)}


class ReportView(StartProgressMixin, TemplateView):
    """GET /report/: a page with one job, the sales report. POST starts it; once
    it completes the browser goes to its download (``progress_success_url``). A
    reload shows the visitor's report while it runs or just finished
    (``progress_resume``, on by default)."""

    template_name = "demo/report.html"
    progress_tasks = JOBS["report"].tasks
    progress_job = JOBS["report"].run
    progress_title = JOBS["report"].title
    progress_cancellable = True
    # The tab's title shows the percent, then the outcome; a button offers a
    # notification when the report is ready.
    progress_tab_title = True
    progress_notify = True

    def get_progress_success_url(self, session: ProgressSession) -> str:
        return reverse("report-download", args=[session.session_id])

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **page_context(self.request)}


def report_download(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET /report/<id>.csv: the finished report, for whoever may read its session."""
    session = ProgressSession.get(session_id)
    if session is None or not can_read(request, session):
        raise Http404("No such report.")
    report = cache.get(report_key(session_id))
    if report is None:
        raise Http404("No such report.")
    response = HttpResponse(report, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="sales-report.csv"'
    return response
