"""The view mixins when work ends or never starts: the success URL (same site
only), a reload of the page showing the visitor's session (``progress_resume``),
and a refused start answered with a short alert for htmx (its reason under DEBUG
only), logged once."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.test import Client, override_settings
from django.urls import include, path
from django.views.generic import View

from progress_ui import ProgressSession
from progress_ui.mixins import MAX_PAGES, PAGES_FIELD, START_FAILED_HEADER, StartProgressMixin
from tests.integration.test_mixins import (
    STOPPED,
    CountView,
    PageMixin,
    count_job,
    slow_job,
    started,
)


class SuccessView(CountView):
    progress_success_url = "/done/"


class DynamicSuccessView(CountView):
    def get_progress_success_url(self, session: ProgressSession) -> str:
        return f"/reports/{session.session_id}/"


class ForeignSuccessView(CountView):
    progress_success_url = "https://evil.example/phish"


class TitledView(CountView):
    progress_tab_title = True
    progress_notify = True


class SlowView(CountView):
    progress_executor = None  # the shared pool: still running when the test looks
    progress_job = slow_job


class NoResumeView(SlowView):
    progress_resume = False


class PostOnlyView(PageMixin, StartProgressMixin, View):
    """No page of its own to GET (a plain View)."""

    progress_tasks = {"count": "Count"}
    progress_job = count_job


class StoppedView(CountView):
    progress_executor = STOPPED


urlpatterns = [
    path("success/", SuccessView.as_view()),
    path("dynamic-success/", DynamicSuccessView.as_view()),
    path("foreign-success/", ForeignSuccessView.as_view()),
    path("titled/", TitledView.as_view()),
    path("slow/", SlowView.as_view()),
    path("slow/other/", SlowView.as_view()),
    path("no-resume/", NoResumeView.as_view()),
    path("post-only/", PostOnlyView.as_view()),
    path("stopped/", StoppedView.as_view()),
    path("progress/", include("progress_ui.urls")),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]
HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _cache(locmem: str) -> Iterator[None]:
    # A completed task reads "complete" at once (no animation to 100 %).
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": locmem, "COMPLETING_DURATION": 0}):
        yield


# -- success URL ----------------------------------------------------------------------


def test_the_success_url_reaches_the_component(client: Client) -> None:
    html = client.post("/success/", headers=HTMX).content.decode()
    assert 'data-progress-success-url="/done/"' in html
    # The job ran inline and completed: a finished page also links there.
    page = client.post("/success/").content.decode()
    assert '<a class="pui-next__link" href="/done/">Continue</a>' in page


def test_the_success_url_may_depend_on_the_session(client: Client) -> None:
    response = client.post("/dynamic-success/", headers=HTMX)
    session = started(response)
    assert (
        f'data-progress-success-url="/reports/{session.session_id}/"' in response.content.decode()
    )


def test_a_success_url_of_another_site_is_ignored(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    html = client.post("/foreign-success/").content.decode()
    assert "evil.example" not in html
    assert "data-progress-success-url" not in html
    assert "not on this site" in caplog.text


def test_tab_title_and_notify_reach_the_component_and_the_page(client: Client) -> None:
    for response in (client.post("/titled/", headers=HTMX), client.post("/titled/")):
        html = response.content.decode()
        assert " data-progress-tab-title" in html
        assert ' data-progress-notify="Notify me when done"' in html
    plain = client.post("/success/", headers=HTMX).content.decode()
    assert "data-progress-tab-title" not in plain and "data-progress-notify" not in plain


# -- a reload keeps the bar --------------------------------------------------------------


def test_a_get_shows_the_visitors_running_session_of_that_page(client: Client) -> None:
    assert "pui-session" not in client.get("/slow/").content.decode()
    session = started(client.post("/slow/"))
    page = client.get("/slow/")
    html = page.content.decode()
    assert f'data-progress-session="{session.session_id}"' in html
    assert "sse-connect=" in html  # and it goes on streaming
    assert "private" in page["Cache-Control"]
    # For htmx, just the component.
    assert client.get("/slow/", headers=HTMX).content.decode().startswith("<section")
    # Another page, another visitor: not there.
    assert "pui-session" not in client.get("/slow/other/").content.decode()
    assert "pui-session" not in Client().get("/slow/").content.decode()


def test_a_finished_session_is_shown_until_it_expires(client: Client) -> None:
    session = started(client.post("/success/"))
    assert session.to_dict()["status"] == "complete"
    assert (
        f'data-progress-session="{session.session_id}"' in client.get("/success/").content.decode()
    )
    session.delete()
    assert "pui-session" not in client.get("/success/").content.decode()
    assert "/success/" not in client.session[PAGES_FIELD]  # forgotten once gone


def test_resume_can_be_turned_off(client: Client) -> None:
    started(client.post("/no-resume/"))
    assert "pui-session" not in client.get("/no-resume/").content.decode()
    assert "/no-resume/" not in client.session.get(PAGES_FIELD, {})


def test_the_pages_remembered_are_bounded(client: Client) -> None:
    session = started(client.post("/success/"))
    store = client.session
    store[PAGES_FIELD] = {f"/page-{n}/": session.session_id for n in range(MAX_PAGES)}
    store.save()
    started(client.post("/success/"))
    pages = client.session[PAGES_FIELD]
    assert len(pages) == MAX_PAGES
    assert "/page-0/" not in pages and list(pages)[-1] == "/success/"


def test_a_view_without_a_page_still_refuses_get(client: Client) -> None:
    assert client.get("/post-only/").status_code == 405


# -- a refused start ------------------------------------------------------------------------


def test_a_refused_start_answers_htmx_with_a_short_alert(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="progress_ui"):
        response = client.post("/stopped/", headers=HTMX)
    assert response.status_code == 500
    assert response[START_FAILED_HEADER] == "1"
    assert response["Content-Type"].startswith("text/html")
    assert response.content.decode() == (
        '<p class="pui-start-error" role="alert">'
        "Could not start: an error occurred on the server.</p>"
    )
    assert "private" in response["Cache-Control"]
    logged = [r for r in caplog.records if r.name == "progress_ui"]
    assert len(logged) == 1 and logged[0].exc_info  # once, with the traceback


def test_a_cache_that_cannot_be_reached_answers_htmx_with_a_retry(client: Client) -> None:
    with override_settings(PROGRESS_UI={"CACHE_ALIAS": "unreachable"}):
        response = client.post("/success/", headers=HTMX)
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert "please try again in a moment" in response.content.decode()


@override_settings(DEBUG=True)
def test_under_debug_the_reason_is_shown_escaped(client: Client) -> None:
    response = client.post("/stopped/", headers=HTMX)
    html = response.content.decode()
    assert "Could not start: RuntimeError: cannot schedule new futures" in html
    plain = client.post("/stopped/").content.decode()
    assert plain.endswith("RuntimeError: cannot schedule new futures after shutdown")


class WithoutProgressUrls:
    """A URLconf that forgot ``include("progress_ui.urls")``."""

    urlpatterns = [path("slow/", SlowView.as_view())]


def test_a_page_that_cannot_render_its_component_says_so(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with override_settings(ROOT_URLCONF=WithoutProgressUrls):
        response = client.post("/slow/", headers=HTMX)
    assert response.status_code == 500
    assert response[START_FAILED_HEADER] == "1"
    assert "Could not start" in response.content.decode()
    assert "include('progress_ui.urls')" in caplog.text


def test_the_alert_is_translated(client: Client) -> None:
    from django.utils import translation

    with translation.override("de"):
        html = client.post("/stopped/", headers=HTMX).content.decode()
    assert "Start nicht möglich: auf dem Server ist ein Fehler aufgetreten." in html
