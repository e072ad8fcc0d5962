"""``{% load progress_ui %}`` tags and the cotton components that wrap them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.template import Context, Template, engines
from django.test import RequestFactory, override_settings
from django.urls import include, path
from django_cotton.compiler_regex import CottonCompiler

from progress_ui import ProgressSession
from progress_ui.render.components import render_session
from progress_ui.templatetags.progress_ui import csp_nonce, script_tags

urlpatterns = [path("progress/", include("progress_ui.urls"))]
pytestmark = pytest.mark.urls(__name__)


def render(source: str, context: dict[str, object] | None = None, cotton: bool = False) -> str:
    if cotton:
        source = CottonCompiler().process(source)
    return engines["django"].from_string(source).render(context or {})


@pytest.fixture
def session(locmem: str) -> Iterator[ProgressSession]:
    s = ProgressSession.create({"a": "<b>Alpha</b>", "b": "Beta"})
    yield s
    s.delete()


def test_scripts_default_to_htmx2_with_the_2x_sse_extension() -> None:
    html = render("{% load progress_ui %}{% progress_scripts %}")
    assert html.splitlines() == [
        '<script src="/static/progress_ui/vendor/htmx-2.0.11.min.js" defer></script>',
        '<script src="/static/progress_ui/vendor/htmx-ext-sse-2.2.4.js" defer></script>',
        '<script src="/static/progress_ui/progress_ui.js" defer></script>',
    ]


def test_scripts_follow_the_htmx_version_setting() -> None:
    with override_settings(PROGRESS_UI={"HTMX_VERSION": 4}):
        html = render("{% load progress_ui %}{% progress_scripts %}")
    assert "htmx-4.0.1.min.js" in html
    assert "htmx-hx-sse-4.0.1.js" in html
    assert "2.0.11" not in html


def test_scripts_version_argument() -> None:
    assert "htmx-4.0.1.min.js" in render("{% load progress_ui %}{% progress_scripts 4 %}")


def test_scripts_nonce_from_request() -> None:
    request = RequestFactory().get("/")
    request.csp_nonce = "abc123"  # type: ignore[attr-defined]
    html = render("{% load progress_ui %}{% progress_scripts %}", {"request": request})
    assert html.count("<script") == html.count('defer nonce="abc123"') == 3


def test_scripts_nonce_from_context_variable_is_escaped() -> None:
    html = render("{% load progress_ui %}{% progress_scripts %}", {"csp_nonce": 'n"><x'})
    assert 'nonce="n&quot;&gt;&lt;x"' in html


def test_no_nonce_attribute_without_a_nonce() -> None:
    assert "nonce" not in script_tags()
    assert csp_nonce({}) == ""


def test_css_tag() -> None:
    html = render("{% load progress_ui %}{% progress_css %}", {"csp_nonce": "n1"})
    assert html == '<link rel="stylesheet" href="/static/progress_ui/progress_ui.css" nonce="n1">'


def test_progress_session_tag_equals_the_function(session: ProgressSession) -> None:
    html = render('{% load progress_ui %}{% progress_session s title="Import" %}', {"s": session})
    assert html == render_session(session, title="Import")
    assert "&lt;b&gt;Alpha&lt;/b&gt;" in html


def test_progress_session_tag_uses_the_request(session: ProgressSession) -> None:
    request = RequestFactory().get("/page/")
    html = render(
        "{% load progress_ui %}{% progress_session s %}", {"s": session, "request": request}
    )
    assert "url=/page/" in html


def test_progress_session_tag_accepts_a_snapshot(session: ProgressSession) -> None:
    html = render("{% load progress_ui %}{% progress_session snap %}", {"snap": session.to_dict()})
    assert f'data-progress-session="{session.session_id}"' in html


def test_progress_bar_tag_escapes() -> None:
    html = render('{% load progress_ui %}{% progress_bar "<i>x</i>" 55 "running" "m&m" %}')
    assert "&lt;i&gt;x&lt;/i&gt;" in html
    assert "m&amp;m" in html
    assert 'aria-valuenow="55"' in html


def test_cotton_session_component(session: ProgressSession) -> None:
    html = render(
        '<c-progress.session :session="s" title="Import" htmx="4" />', {"s": session}, cotton=True
    )
    assert html.strip() == render_session(session, title="Import", htmx=4)
    assert "hx-sse:connect" in html


def test_cotton_bar_component() -> None:
    html = render(
        '<c-progress.bar label="Upload" :percent="42" status="error" message="No space" />',
        cotton=True,
    )
    assert 'aria-valuenow="42"' in html
    assert "pui-bar--error" in html
    assert "No space" in html


def test_cotton_bar_component_from_a_task_snapshot(session: ProgressSession) -> None:
    session.update("b", current=3, total=4)
    html = render(
        '<c-progress.bar :task="snap.tasks.b" />', {"snap": session.to_dict()}, cotton=True
    )
    assert "Beta" in html
    assert "3 of 4" in html


def test_cotton_scripts_component() -> None:
    html = render('<c-progress.scripts version="4" />', cotton=True)
    assert "progress_ui.css" in html
    assert "htmx-4.0.1.min.js" in html


def test_htmx4_core_loads_while_parsing_and_the_rest_deferred() -> None:
    """Regression: a deferred htmx 4 starts on a timer and can process the page
    before its SSE extension arrives, leaving the component without a stream."""
    tags = str(script_tags(version=4)).splitlines()
    assert "htmx-4.0.1.min.js" in tags[0] and " defer" not in tags[0]
    assert all(" defer" in tag for tag in tags[1:])
    assert all(" defer" in tag for tag in str(script_tags(version=2)).splitlines())


@pytest.mark.parametrize("context", [{}, {"progress_session": None}, {"progress_session": ""}])
def test_no_session_yet_renders_nothing(context: dict[str, object]) -> None:
    html = Template("{% load progress_ui %}[{% progress_session progress_session %}]").render(
        Context(context)
    )
    assert html == "[]"


def test_scripts_without_htmx_for_pages_that_load_it_themselves() -> None:
    html = Template("{% load progress_ui %}{% progress_scripts htmx=False %}").render(Context({}))
    assert "htmx-2.0.11.min.js" not in html
    assert "htmx-ext-sse-2.2.4.js" in html and "progress_ui.js" in html


def test_tab_title_and_notify_through_the_tag_and_the_cotton_components(
    session: ProgressSession,
) -> None:
    expected = render_session(session, htmx=4, tab_title=True, notify=True)
    assert "data-progress-tab-title" in expected and "data-progress-notify" in expected
    tag = render(
        "{% load progress_ui %}{% progress_session s htmx=4 tab_title=True notify=True %}",
        {"s": session},
    )
    assert tag == expected
    cotton = render(
        '<c-progress.session :session="s" htmx="4" tab_title="1" notify="1" />',
        {"s": session},
        cotton=True,
    )
    assert cotton.strip() == expected
    group = render(
        '<c-progress.group :sessions="ss" htmx="4" tab_title="1" notify="1" />',
        {"ss": [session]},
        cotton=True,
    )
    assert "data-progress-tab-title" in group and "pauseOnBackground" in group
    off = render('<c-progress.session :session="s" tab_title="0" />', {"s": session}, cotton=True)
    assert "data-progress-tab-title" not in off
