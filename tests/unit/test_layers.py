"""The layers contract of ``make lint`` (import-linter, ``pyproject.toml``) holds
for the package, and breaks when a low layer imports a high one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is not installed in this environment"
)


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_package(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "progress_ui", tmp_path / "progress_ui", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    result = lint_imports(copy_of_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("engine/session.py", "render.components"),  # the engine reaching up into presentation
        ("core/status.py", "views"),  # the core reaching up into delivery
        ("wire/sse.py", "streaming.hub"),  # a pure wire format reaching into delivery
        ("wire/ndjson.py", "engine.follow"),  # a pure wire format reaching into the engine
        ("streaming/hub.py", "streaming.sse_stream"),  # the hub reaching up into a pipeline
        ("engine/store/__init__.py", "engine.session"),  # the store reaching up into the engine
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path: Path, low: str, high: str) -> None:
    tree = copy_of_package(tmp_path)
    module = tree / "progress_ui" / low
    module.write_text(module.read_text() + f"\nimport progress_ui.{high}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    importer = low.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert f"progress_ui.{importer} -> progress_ui.{high}" in result.stdout
