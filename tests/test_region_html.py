"""The SSE payload built in Python (``progress_ui.region_html``) is exactly what
the templates render, and is only used while the templates are the packaged ones."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.test import override_settings
from django.utils import translation
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from progress_ui import region_html
from progress_ui.display import session_display
from progress_ui.rendering import render_partials
from progress_ui.snapshot import SessionSnapshot, TaskSnapshot

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = st.sampled_from(["", "Import", "<b>\"x\"</b> & 'y'", "line\nbreak", "é ☃ 100%"])
STATUSES = ["pending", "running", "complete", "error", "cancelled"]


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
            message=draw(HOSTILE),
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
        }
        tasks[f"t{i}"] = {**task, **extra}  # type: ignore[typeddict-item]
    return SessionSnapshot(
        session_id="S" * 32,
        status=draw(st.sampled_from(STATUSES)),
        overall_percent=draw(st.integers(0, 100)),
        tasks=tasks,
        expired=draw(st.booleans()),
    )


def by_template(snapshot: SessionSnapshot) -> str:
    display = session_display(snapshot)
    return render_to_string("progress_ui/partials.html", {"display": display}).strip()


@hsettings(max_examples=300, deadline=None)
@given(snapshots(), st.sampled_from(["en", "fr", "de", "es"]))
def test_the_same_bytes_as_the_templates(snapshot: SessionSnapshot, language: str) -> None:
    with translation.override(language):
        display = session_display(snapshot)
        assert region_html.partials(display, display.tasks) == by_template(snapshot)


def test_the_packaged_templates_are_the_ones_reproduced() -> None:
    # Fails when a template changes: update region_html with it, then its hash.
    for name, expected in region_html.TEMPLATE_HASHES.items():
        assert region_html.template_hash(name) == expected, name
    assert region_html.templates_unchanged()


def test_an_overridden_template_is_rendered_instead(tmp_path: Path) -> None:
    (tmp_path / "progress_ui").mkdir()
    original = (ROOT / "templates/progress_ui/status.html").read_text()
    (tmp_path / "progress_ui/status.html").write_text("OVERRIDDEN " + original)
    snapshot = SessionSnapshot(
        session_id="S" * 32,
        status="running",
        overall_percent=10,
        tasks={"a": TaskSnapshot(name="A", status="running", percent=10, message="",
                                 current=None, total=None, simulated=False)},
        expired=False,
    )  # fmt: skip
    assert "OVERRIDDEN" not in render_partials(snapshot)
    from django.conf import settings

    templates = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    with override_settings(TEMPLATES=templates):
        assert not region_html.templates_unchanged()
        assert "OVERRIDDEN" in render_partials(snapshot)
    assert region_html.templates_unchanged()


@pytest.mark.parametrize("language", ["en", "fr"])
def test_changes_alone_match_too(language: str) -> None:
    task = TaskSnapshot(name="A", status="running", percent=10, message="",
                        current=None, total=None, simulated=False)  # fmt: skip
    before = SessionSnapshot(
        session_id="S" * 32, status="running", overall_percent=10,
        tasks={"a": task, "b": task}, expired=False,
    )  # fmt: skip
    after = SessionSnapshot(
        session_id="S" * 32, status="running", overall_percent=30,
        tasks={"a": task, "b": {**task, "percent": 50}}, expired=False,
    )  # fmt: skip
    with translation.override(language):
        display = session_display(after)
        changed = [(t, bar) for t, bar in display.tasks if t == "b"]
        expected = render_to_string(
            "progress_ui/partials.html", {"display": replace(display, tasks=tuple(changed))}
        ).strip()
        assert render_partials(after, before) == expected
