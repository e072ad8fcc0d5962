"""View mixins: POST starts owned work in a swappable executor; a session page
by id with the streaming views' 404 rules."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.test import Client, RequestFactory, override_settings
from django.urls import include, path
from django.views.generic import TemplateView

from progress_ui import ProgressError, ProgressSession
from progress_ui.contrib.threads import default_executor
from progress_ui.mixins import ProgressSessionView, StartProgressMixin


class InlineExecutor(Executor):
    """Runs work at submit time, so a test sees its result right after the POST."""

    def __init__(self) -> None:
        self.submitted = 0
        self.last: Future[Any] | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        self.last = future
        return future


EXECUTOR = InlineExecutor()


#: Every session a test view created, newest last.
CREATED: list[ProgressSession] = []


class PageMixin:
    template_name = "progress_ui/page.html"
    progress_executor = EXECUTOR

    def create_progress_session(self) -> ProgressSession:
        session: ProgressSession = super().create_progress_session()  # type: ignore[misc]
        CREATED.append(session)
        return session


# Jobs are module-level functions: a worker process imports them by name.
def count_job(session: ProgressSession) -> None:
    for _ in session.iterate("count", range(5)):
        pass


def fail_job(session: ProgressSession) -> None:
    session.update("a", percent=50)
    raise ProgressError("Quota exceeded.")


def crash_job(session: ProgressSession) -> None:
    raise RuntimeError("secret internals")


def kwargs_job(session: ProgressSession, *, rows: int) -> None:
    for _ in session.iterate("count", range(rows)):
        pass


class CountView(PageMixin, StartProgressMixin, TemplateView):
    progress_tasks = {"count": "Count <things>"}
    progress_title = "Counting"
    progress_job = count_job


class FailView(PageMixin, StartProgressMixin, TemplateView):
    progress_tasks = {"a": "A", "b": "B"}
    progress_job = fail_job


class CrashView(FailView):
    progress_job = crash_job


class NoTasksView(PageMixin, StartProgressMixin, TemplateView):
    progress_job = count_job


class NoWorkView(PageMixin, StartProgressMixin, TemplateView):
    progress_tasks = {"a": "A"}


class DynamicTasksView(CountView):
    progress_tasks = None

    def get_progress_tasks(self) -> dict[str, str]:
        return {"count": "Dynamic"}


class KwargsView(CountView):
    progress_job = "tests.integration.test_mixins.kwargs_job"  # a dotted path works too

    def get_progress_job_kwargs(self) -> dict[str, Any]:
        return {"rows": int(self.request.POST["rows"])}


class LocalJobView(CountView):
    def get_progress_job(self) -> Callable[[ProgressSession], None]:
        def local(session: ProgressSession) -> None:  # not importable by a worker
            pass

        return local


class UnknownRunnerView(CountView):
    progress_runner = "carrier_pigeon"


class CancellableView(CountView):
    progress_cancellable = True
    progress_executor = None  # the shared pool: the job is still running when we look
    progress_job = "tests.integration.test_mixins.slow_job"


def interrupted_job(session: ProgressSession) -> None:
    session.update("count", percent=40)
    raise SystemExit(1)  # what a worker's forced shutdown raises in the job


def cancelled_first_job(session: ProgressSession) -> None:
    session.update("a", percent=10)
    session.cancel("a")  # what the Cancel button does, from another process
    session.update("a", percent=20)  # raises TaskCancelled: the job stops here
    session.update("b", percent=50)


class CancelledFirstView(FailView):
    progress_job = cancelled_first_job


class InterruptedView(CountView):
    progress_job = interrupted_job


class MissingPathView(CountView):
    progress_job = "tests.integration.test_mixins.no_such_job"


STOPPED = ThreadPoolExecutor(max_workers=1)
STOPPED.shutdown()


class StoppedExecutorView(CountView):
    progress_executor = STOPPED  # refuses work: "cannot schedule new futures"


def slow_job(session: ProgressSession) -> None:
    for _ in session.iterate("count", range(50)):
        import time

        time.sleep(0.02)


urlpatterns = [
    path("count/", CountView.as_view()),
    path("fail/", FailView.as_view()),
    path("crash/", CrashView.as_view()),
    path("no-tasks/", NoTasksView.as_view()),
    path("no-work/", NoWorkView.as_view()),
    path("dynamic/", DynamicTasksView.as_view()),
    path("kwargs/", KwargsView.as_view()),
    path("local-job/", LocalJobView.as_view()),
    path("unknown-runner/", UnknownRunnerView.as_view()),
    path("cancellable/", CancellableView.as_view()),
    path("interrupted/", InterruptedView.as_view()),
    path("cancelled-first/", CancelledFirstView.as_view()),
    path("missing-path/", MissingPathView.as_view()),
    path("stopped-executor/", StoppedExecutorView.as_view()),
    path("session/<str:session_id>/", ProgressSessionView.as_view()),
    path("bad-kwarg/<str:sid>/", ProgressSessionView.as_view()),
    path("progress/", include("progress_ui.urls")),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]

SID_RE = re.compile(r'data-progress-session="([^"]+)"')


@pytest.fixture(autouse=True)
def _cache(locmem: str) -> Iterator[None]:
    yield


def started(response: Any) -> ProgressSession:
    return started_html(response.content.decode())


def started_html(html: str) -> ProgressSession:
    match = SID_RE.search(html)
    assert match, html
    session = ProgressSession.get(match.group(1))
    assert session is not None
    return session


def test_post_creates_session_runs_work_and_renders_the_page(client: Client) -> None:
    before = EXECUTOR.submitted
    response = client.post("/count/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith("<!doctype html>")
    assert "Counting" in html
    assert "Count &lt;things&gt;" in html
    assert EXECUTOR.submitted == before + 1
    session = started(response)
    assert session.to_dict()["tasks"]["count"]["current"] == 5


def test_htmx_post_returns_only_the_component(client: Client) -> None:
    response = client.post("/count/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.startswith('<section class="pui-session"')
    assert "<html" not in html
    # A component swapped in by htmx must not carry a live meta refresh.
    assert "http-equiv" not in html


def test_get_tasks_hook(client: Client) -> None:
    response = client.post("/dynamic/")
    assert "Dynamic" in response.content.decode()


def test_session_belongs_to_the_visitor_who_started_it(client: Client) -> None:
    session = started(client.post("/count/"))
    url = f"/session/{session.session_id}/"
    assert client.get(url).status_code == 200
    assert Client().get(url).status_code == 404
    assert Client().get(f"/progress/{session.session_id}/json/").status_code == 404


def test_post_requires_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post("/count/").status_code == 403


def test_post_with_csrf_token_passes() -> None:
    client = Client(enforce_csrf_checks=True)
    request = RequestFactory().get("/")
    from django.middleware.csrf import get_token

    token = get_token(request)
    client.cookies["csrftoken"] = request.META["CSRF_COOKIE"]
    assert client.post("/count/", {"csrfmiddlewaretoken": token}).status_code == 200


def test_progress_error_message_is_shown(client: Client) -> None:
    session = started(client.post("/fail/"))
    snap = session.to_dict()
    assert snap["status"] == "error"
    assert {t["message"] for t in snap["tasks"].values()} == {"Quota exceeded."}


def test_other_exceptions_show_the_generic_message(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    session = started(client.post("/crash/"))
    snap = session.to_dict()
    assert snap["status"] == "error"
    for task in snap["tasks"].values():
        assert task["message"] == "Something went wrong."
    assert "secret internals" in caplog.text
    page = client.get(f"/session/{session.session_id}/").content.decode()
    assert "secret internals" not in page


def test_missing_progress_tasks_names_class_attribute_and_method(client: Client) -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        client.post("/no-tasks/")
    message = str(info.value)
    assert "NoTasksView" in message
    assert "progress_tasks" in message
    assert "get_progress_tasks()" in message


def test_missing_job_names_class_attribute_and_method(client: Client) -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        client.post("/no-work/")
    message = str(info.value)
    assert "NoWorkView" in message
    assert "progress_job" in message
    assert "get_progress_job()" in message


def test_job_kwargs_reach_the_job(client: Client) -> None:
    session = started(client.post("/kwargs/", {"rows": "7"}))
    assert session.to_dict()["tasks"]["count"]["current"] == 7


def test_a_job_workers_cannot_import_is_refused_in_the_request(client: Client) -> None:
    before = EXECUTOR.submitted
    with pytest.raises(ImproperlyConfigured, match="module-level function"):
        client.post("/local-job/")
    assert EXECUTOR.submitted == before


def test_unknown_runner_is_explained(client: Client) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"carrier_pigeon.*'threads', 'django_tasks'"):
        client.post("/unknown-runner/")


def test_cancellable_view_renders_a_cancel_form_with_csrf(client: Client) -> None:
    html = client.post("/cancellable/", headers={"HX-Request": "true"}).content.decode()
    session = started_html(html)
    assert f'action="/progress/{session.session_id}/cancel/"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'class="pui-cancel"' not in client.post("/count/").content.decode()
    session.cancel()


def test_session_page_shows_the_state(client: Client) -> None:
    session = started(client.post("/count/"))
    html = client.get(f"/session/{session.session_id}/").content.decode()
    assert html.startswith("<!doctype html>")
    assert "progress_ui/vendor/htmx-2.0.11.min.js" in html
    assert "5 of 5" in html


def test_session_page_htmx_gets_component(client: Client) -> None:
    session = started(client.post("/count/"))
    html = client.get(
        f"/session/{session.session_id}/", headers={"HX-Request": "true"}
    ).content.decode()
    assert html.startswith('<section class="pui-session"')


@pytest.mark.parametrize("sid", ["nope", "A" * 32, "../../etc/passwd" + "a" * 16])
def test_session_page_404_for_missing_or_malformed(client: Client, sid: str) -> None:
    assert client.get(f"/session/{sid}/").status_code == 404


def test_session_page_wrong_kwarg_is_explained(client: Client) -> None:
    with pytest.raises(ImproperlyConfigured, match="session_url_kwarg"):
        client.get("/bad-kwarg/" + "A" * 32 + "/")


def test_default_executor_is_shared() -> None:
    assert default_executor() is default_executor()
    assert default_executor().submit(lambda: 7).result(timeout=5) == 7


def test_executor_hook_can_be_overridden() -> None:
    calls: list[str] = []

    class Recording(InlineExecutor):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
            calls.append("submit")
            return super().submit(fn, *args, **kwargs)

    class View(CountView):
        progress_executor = Recording()

    request: HttpRequest = RequestFactory().post("/")
    request.session = SessionStore()
    request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
    response = View.as_view()(request)
    assert response.status_code == 200
    assert calls == ["submit"]


# -- starts are atomic; the runner sees what the bar shows ---------------------------


def test_a_job_workers_cannot_import_leaves_no_session(client: Client) -> None:
    before = len(CREATED)
    with pytest.raises(ImproperlyConfigured, match="module-level function"):
        client.post("/local-job/")
    with pytest.raises(ImproperlyConfigured, match=r"no_such_job.*cannot be imported"):
        client.post("/missing-path/")
    with pytest.raises(ImproperlyConfigured, match="carrier_pigeon"):
        client.post("/unknown-runner/")
    assert len(CREATED) == before


def test_a_runner_that_refuses_the_job_ends_the_session_with_a_clear_500(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.post("/stopped-executor/")
    assert response.status_code == 500
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == StartProgressMixin.progress_start_error_message
    assert "Traceback" not in response.content.decode()
    assert "private" in response["Cache-Control"]
    # The session is not left pending: its bars show the same message.
    snap = CREATED[-1].to_dict()
    assert snap["status"] == "error"
    assert {t["message"] for t in snap["tasks"].values()} == {
        StartProgressMixin.progress_start_error_message
    }
    assert "cannot schedule new futures" in caplog.text  # the details, for developers
    # Logged once, by the mixin, not a second time by Django's request logger.
    assert [r.name for r in caplog.records if r.levelname == "ERROR"] == ["progress_ui"]


def test_a_cache_that_cannot_be_reached_answers_503_and_starts_nothing(client: Client) -> None:
    before = EXECUTOR.submitted
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "unreachable"}):
        response = client.post("/count/")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert EXECUTOR.submitted == before


def test_a_failed_job_fails_its_future_too(client: Client) -> None:
    """The "threads" runner's record of a job is its Future: it holds the error."""
    started(client.post("/fail/"))
    assert EXECUTOR.last is not None
    assert isinstance(EXECUTOR.last.exception(), ProgressError)
    started(client.post("/crash/"))
    assert isinstance(EXECUTOR.last.exception(), RuntimeError)
    started(client.post("/count/"))
    assert EXECUTOR.last.result() == "complete"


def test_system_exit_in_a_job_ends_its_tasks_at_once(client: Client) -> None:
    session = started(client.post("/interrupted/"))
    task = session.to_dict()["tasks"]["count"]
    assert (task["status"], task["message"]) == ("error", "Interrupted.")
    assert EXECUTOR.last is not None
    assert isinstance(EXECUTOR.last.exception(), SystemExit)


def test_a_job_stopped_by_a_cancel_cancels_the_tasks_it_had_not_reached(client: Client) -> None:
    session = started(client.post("/cancelled-first/"))
    tasks = session.to_dict()["tasks"]
    assert (tasks["a"]["status"], tasks["b"]["status"]) == ("cancelled", "cancelled")
    assert EXECUTOR.last is not None
    assert EXECUTOR.last.result() == "cancelled"
