"""The vendored htmx files are the versions package.json pins, and the template
tags point at files that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from progress_ui.templatetags.progress_ui import SCRIPTS, STYLESHEET

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "progress_ui" / "static"
VENDOR = STATIC / "progress_ui" / "vendor"


def pinned() -> dict[str, str]:
    """Package name -> exact version, resolving npm aliases (``npm:htmx.org@4.0.1``)."""
    deps = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    out = {}
    for alias, spec in deps.items():
        if spec.startswith("npm:"):
            _, _, version = spec[4:].rpartition("@")
            out[alias] = version
        else:
            out[alias] = spec
    return out


def test_versions_are_pinned_exactly() -> None:
    versions = pinned()
    assert versions == {"htmx.org": "2.0.11", "htmx-ext-sse": "2.2.4", "htmx4": "4.0.1"}
    for version in versions.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), version


def test_lockfile_matches_package_json() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for name, version in pinned().items():
        assert lock[f"node_modules/{name}"]["version"] == version


def test_vendored_file_names_carry_the_pinned_versions() -> None:
    v = pinned()
    expected = {
        f"htmx-{v['htmx.org']}.min.js",
        f"htmx-ext-sse-{v['htmx-ext-sse']}.js",
        f"htmx-{v['htmx4']}.min.js",
        f"htmx-hx-sse-{v['htmx4']}.js",
    }
    assert {p.name for p in VENDOR.glob("*.js")} == expected


@pytest.mark.parametrize(
    ("file_name", "marker"),
    [
        ("htmx-2.0.11.min.js", 'version:"2.0.11"'),
        ("htmx-4.0.1.min.js", 'version="4.0.1"'),
        # The 2.x extension package, not htmx.org/dist/ext/sse.js (the 1.x extension).
        ("htmx-ext-sse-2.2.4.js", "htmx.defineExtension('sse'"),
        ("htmx-hx-sse-4.0.1.js", "hx-sse:connect"),
    ],
)
def test_vendored_file_contents_match_their_names(file_name: str, marker: str) -> None:
    assert marker in (VENDOR / file_name).read_text()


def test_template_tags_point_at_vendored_files() -> None:
    for files in SCRIPTS.values():
        for path in files:
            assert (STATIC / path).is_file(), path
    assert (STATIC / STYLESHEET).is_file()
