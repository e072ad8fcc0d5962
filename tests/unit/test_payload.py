"""One definition of each region's markup: the page (``render_session``) and the SSE
payload (``render_partials``) carry the same content in every region, with the
packaged templates, whatever the template engine's options, and with templates
a project overrides."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django import template
from django.conf import settings
from django.template.loader import render_to_string
from django.test import override_settings
from django.urls import include, path
from django.utils import translation
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from progress_ui.core.snapshot import SessionSnapshot, TaskSnapshot
from progress_ui.render import markup, regions
from progress_ui.render.components import render_bar, render_partials, render_session
from progress_ui.render.display import make_bar, session_display

urlpatterns = [path("progress/", include("progress_ui.urls"))]
pytestmark = pytest.mark.urls(__name__)

EVIL = "<script>alert('x')</script>"
HOSTILE = st.sampled_from(["", "Import", "<b>\"x\"</b> & 'y'", "line\nbreak", "é ☃ 100%", EVIL])
#: Messages: hostile text, and progress_ui's own ones (translated when shown).
MESSAGES = HOSTILE | st.sampled_from(
    ["The worker stopped responding.", "Retrying (attempt 2 of 4)…"]
)
STATUSES = ["pending", "running", "complete", "error", "cancelled"]
LANGUAGES = ["en", "fr", "de", "es"]


@st.composite
def snapshots(draw: st.DrawFn) -> SessionSnapshot:
    tasks: dict[str, TaskSnapshot] = {}
    for i in range(draw(st.integers(1, 4))):
        status = draw(st.sampled_from(STATUSES))
        counted = draw(st.booleans())
        task = TaskSnapshot(
            name=draw(HOSTILE) or f"Task {i}",
            status=status,
            percent=draw(st.integers(0, 100)),
            message=draw(MESSAGES),
            current=draw(st.integers(0, 5000)) if counted else None,
            total=draw(st.sampled_from([None, 0, 5000])) if counted else None,
            simulated=draw(st.booleans()),
        )
        extra = {
            "weight": draw(st.sampled_from([1.0, 1.0, 3.0])),
            "step": draw(st.sampled_from([None, 2])),
            "steps": draw(st.sampled_from([None, 12])),
            "step_name": draw(HOSTILE),
            "rate": draw(st.sampled_from([None, 12.5])),
            "eta": draw(st.sampled_from([None, 40.0, 900.0])),
            "stalled": draw(st.booleans()),
            "started_at": draw(st.sampled_from([None, 1_700_000_000.0])),
            "finished_at": draw(st.sampled_from([None, 1_700_000_100.0])),
            "result_url": draw(st.sampled_from([None, "/r.csv?a=1&b=2", "javascript:x", EVIL])),
            "result_label": draw(HOSTILE),
        }
        tasks[f"t{i}"] = {**task, **extra}  # type: ignore[typeddict-item]
    return SessionSnapshot(
        session_id="S" * 32,
        status=draw(st.sampled_from(STATUSES)),
        overall_percent=draw(st.integers(0, 100)),
        tasks=tasks,
        expired=draw(st.booleans()),
    )


def simple_snapshot(name: str = "A", message: str = "") -> SessionSnapshot:
    task = TaskSnapshot(name=name, status="running", percent=10, message=message,
                        current=None, total=None, simulated=False)  # fmt: skip
    return SessionSnapshot(
        session_id="S" * 32, status="running", overall_percent=10,
        tasks={"a": task, "b": {**task, "percent": 50}}, expired=False,
    )  # fmt: skip


# -- reading regions back ----------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class _Regions(HTMLParser):
    """The inner HTML of every element with one of ``ids``, as written in the source."""

    def __init__(self, source: str, ids: set[str]) -> None:
        super().__init__(convert_charrefs=False)
        self.source, self.ids, self.found = source, ids, {}
        self.lines = [0]
        for line in source.splitlines(keepends=True):
            self.lines.append(self.lines[-1] + len(line))
        self.open: list[tuple[str | None, int]] = []  # (region id or None, content start)
        self.feed(source)
        self.close()

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.lines[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID:
            return
        rid = dict(attrs).get("id")
        start = self._offset() + len(self.get_starttag_text() or "")
        self.open.append((rid if rid in self.ids else None, start))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        rid, start = self.open.pop()
        if rid is not None:
            self.found[rid] = self.source[start : self._offset()]


PARTIAL_RE = re.compile(r'<hx-partial id="([^"]+)" hx-swap="innerMorph">(.*?)</hx-partial>', re.S)


def stream_regions(snapshot: SessionSnapshot, previous: SessionSnapshot | None = None) -> dict:
    payload = str(render_partials(snapshot, previous))
    found = dict(PARTIAL_RE.findall(payload))
    assert PARTIAL_RE.sub("", payload).strip() == "", "only hx-partials in the payload"
    return found


def page_regions(snapshot: SessionSnapshot, **kwargs: Any) -> dict[str, str]:
    display = session_display(snapshot)
    ids = {display.summary_id, display.status_id, *(bar.dom_id for _, bar in display.tasks)}
    ids.add(display.outcome_id)
    found = _Regions(str(render_session(snapshot, **kwargs)), ids).found
    assert set(found) == ids
    return found


def assert_page_equals_stream(snapshot: SessionSnapshot, title: str = EVIL) -> dict[str, str]:
    page = page_regions(snapshot, title=title)
    assert stream_regions(snapshot) == page
    return page


# -- (a) the packaged templates -------------------------------------------------------------


@hsettings(max_examples=200, deadline=None)
@given(snapshots(), snapshots(), st.sampled_from(LANGUAGES))
def test_page_and_stream_carry_the_same_regions(
    snapshot: SessionSnapshot, previous: SessionSnapshot, language: str
) -> None:
    with translation.override(language):
        page = assert_page_equals_stream(snapshot)
        # A change sends the bars that differ, with the page's content too.
        changed = stream_regions(snapshot, previous)
        assert changed.items() <= page.items()
    for content in page.values():
        assert "<script>" not in content and "<b>" not in content


def test_the_default_markup_is_built_in_python_not_by_the_engine() -> None:
    display = session_display(simple_snapshot(EVIL, EVIL))
    assert regions.overridden() == frozenset()
    found = stream_regions(simple_snapshot(EVIL, EVIL))
    assert found[display.summary_id] == markup.summary(display)
    assert found[display.status_id] == markup.status(display)
    for _, bar in display.tasks:
        assert found[bar.dom_id] == markup.bar_inner(bar)
        assert EVIL not in found[bar.dom_id]


@pytest.mark.parametrize(
    ("name", "context"),
    [
        ("progress_ui/summary.html", "display"),
        ("progress_ui/status.html", "display"),
        ("progress_ui/bar_inner.html", "bar"),
        ("progress_ui/partials.html", "display"),
    ],
)
def test_the_packaged_region_templates_render_the_default_markup(name: str, context: str) -> None:
    # Included directly (as a project's own frame template may): not one byte more,
    # not even a trailing newline.
    display = session_display(simple_snapshot(EVIL, EVIL))
    bar = display.tasks[0][1]
    value = {"display": display, "bar": bar}[context]
    expected = {
        "progress_ui/summary.html": lambda: markup.summary(display),
        "progress_ui/status.html": lambda: markup.status(display),
        "progress_ui/bar_inner.html": lambda: markup.bar_inner(bar),
        "progress_ui/partials.html": lambda: str(render_partials(simple_snapshot(EVIL, EVIL))),
    }[name]()
    assert render_to_string(name, {context: value}) == expected


def test_a_standalone_bar_has_no_ids_and_is_labelled_by_its_name() -> None:
    html = str(render_bar(name=EVIL, percent=30, message=EVIL))
    assert ' id="' not in html
    assert 'aria-label="&lt;script&gt;' in html
    assert markup.bar_inner(make_bar(name=EVIL, percent=30, message=EVIL)) in html


# -- (b) whatever the template engine's options ----------------------------------------------

#: An extra builtin library whose tags are named like the package's own: the
#: templates {% load progress_ui %}, which takes precedence.
register = template.Library()
for _name in ("progress_summary", "progress_bar_inner", "progress_status",
              "progress_default_summary", "progress_default_bar_inner",
              "progress_default_status", "progress_default_partials"):  # fmt: skip
    register.simple_tag(lambda *args, **kwargs: "HIJACKED", name=_name)


def engine_options(**options: object) -> list[dict[str, Any]]:
    base = settings.TEMPLATES[0]
    return [{**base, "OPTIONS": {**base.get("OPTIONS", {}), **options}}]


HOSTILE_ENGINE = engine_options(
    autoescape=False, string_if_invalid="INVALID[%s]", builtins=[__name__]
)


@hsettings(max_examples=60, deadline=None)
@given(snapshots(), st.sampled_from(LANGUAGES))
def test_engine_options_change_nothing(snapshot: SessionSnapshot, language: str) -> None:
    with translation.override(language):
        before_page = str(render_session(snapshot, title=EVIL))
        before_stream = str(render_partials(snapshot))
        with override_settings(TEMPLATES=HOSTILE_ENGINE):
            page = str(render_session(snapshot, title=EVIL))
            stream = str(render_partials(snapshot))
            assert_page_equals_stream(snapshot)
    assert (page, stream) == (before_page, before_stream)
    for html in (page, stream):
        assert "<script>" not in html and "<b>" not in html
        assert "INVALID" not in html and "HIJACKED" not in html
    assert "&lt;script&gt;" in page  # the title, escaped


def test_frames_stay_escaped_without_autoescape() -> None:
    with override_settings(TEMPLATES=HOSTILE_ENGINE):
        bar = str(render_bar(name=EVIL, message=EVIL))
        page = render_to_string(
            "progress_ui/page.html",
            {"progress_session": simple_snapshot(EVIL, EVIL), "progress_title": EVIL,
             "progress_refresh_url": "", "progress_cancellable": True,
             "progress_success_url": ""},
        )  # fmt: skip
    for html in (bar, page):
        assert "<script>" not in html and "&lt;script&gt;" in html
        assert "INVALID" not in html and "HIJACKED" not in html


# -- (c) templates a project overrides ---------------------------------------------------------


@pytest.fixture
def project_templates(tmp_path: Path) -> Iterator[Path]:
    """A project template directory ahead of the app's: write files in
    ``<dir>/progress_ui/`` before entering :func:`overriding`."""
    (tmp_path / "progress_ui").mkdir()
    yield tmp_path
    assert regions.overridden() == frozenset(), "the defaults come back with the settings"


def overriding(directory: Path, **options: object) -> override_settings:
    base = engine_options(**options)[0]
    return override_settings(TEMPLATES=[{**base, "DIRS": [directory, *base["DIRS"]]}])


REGION_OVERRIDES = {
    "summary.html": "<em class=mine>{{ display.status_label }} {{ display.done_count }}</em>",
    "bar_inner.html": "<em class=mine data-task={{ task_id }}>{{ bar.name }} {{ bar.percent }}"
    "</em>",
    "status.html": "<em class=mine>{{ display.status_text }}</em>",
}


@pytest.mark.parametrize("autoescape", [True, False])
@pytest.mark.parametrize("name", sorted(REGION_OVERRIDES))
def test_an_overridden_region_shows_on_the_page_and_in_the_stream(
    project_templates: Path, name: str, autoescape: bool
) -> None:
    (project_templates / "progress_ui" / name).write_text(REGION_OVERRIDES[name])
    snapshot = simple_snapshot(EVIL, EVIL)
    with overriding(project_templates, autoescape=autoescape):
        assert regions.overridden() == {f"progress_ui/{name}"}
        page = assert_page_equals_stream(snapshot)
    mine = [content for content in page.values() if content.startswith("<em class=mine")]
    assert len(mine) == (2 if name == "bar_inner.html" else 1), page
    if name == "bar_inner.html":
        assert "data-task=a>" in mine[0]
        # The engine's options are the project's: its own template, its own escaping.
        assert (EVIL in mine[0]) is not autoescape


def test_an_override_may_wrap_the_default(project_templates: Path) -> None:
    (project_templates / "progress_ui" / "bar_inner.html").write_text(
        "{% load progress_ui %}<div class=mine>{% progress_default_bar_inner bar %}</div>"
    )
    snapshot = simple_snapshot()
    with overriding(project_templates):
        page = assert_page_equals_stream(snapshot)
        bar = str(render_bar(name="Standalone"))
    display = session_display(snapshot)
    for _, shown in display.tasks:
        assert page[shown.dom_id] == f"<div class=mine>{markup.bar_inner(shown)}</div>"
    assert "<div class=mine>" in bar and "Standalone" in bar


def test_an_overridden_payload_is_sent(project_templates: Path) -> None:
    (project_templates / "progress_ui" / "partials.html").write_text(
        '{% load progress_ui %}{% progress_default_partials display %}\n<hx-partial id="extra">'
        "{{ display.done_count }}</hx-partial>"
    )
    snapshot = simple_snapshot()
    with overriding(project_templates):
        payload = str(render_partials(snapshot))
    assert payload.endswith('<hx-partial id="extra">0</hx-partial>')
    assert payload.startswith(str(render_partials(snapshot)))


def test_an_overridden_frame_keeps_the_regions(project_templates: Path) -> None:
    packaged = regions.PACKAGED_DIR / "progress_ui" / "session.html"
    (project_templates / "progress_ui" / "session.html").write_text(
        packaged.read_text().replace('class="pui-session"', 'class="pui-session mine"')
    )
    snapshot = simple_snapshot(EVIL)
    with overriding(project_templates):
        assert regions.overridden() == frozenset()  # a frame: no region changes
        assert 'class="pui-session mine"' in render_session(snapshot)
        assert_page_equals_stream(snapshot)
