"""What ships is what is tested: build the wheel, install it in a fresh
virtualenv, and render a component and find static files from it; and the same
from an editable install (``pip install -e``) of this checkout, where the
templates and static files are found inside the package by ``APP_DIRS`` and the
app's static finder alone (no ``DIRS``, no ``STATICFILES_DIRS``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import django, sys
    from django.conf import settings
    expected_home = sys.argv[1]  # where progress_ui must be imported from
    settings.configure(
        INSTALLED_APPS=["django.contrib.staticfiles", "django_cotton", "progress_ui", "site_pages"],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "DIRS": [], "APP_DIRS": True, "OPTIONS": {}}],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        STATIC_URL="/static/", ROOT_URLCONF="urls", SECRET_KEY="x",
    )
    django.setup()
    import progress_ui
    from django.contrib.staticfiles import finders
    from django.template import Context, Template
    from django.template.loader import render_to_string
    from progress_ui import ProgressSession
    assert progress_ui.__file__.startswith(expected_home), progress_ui.__file__
    session = ProgressSession.create({"load": "Load <b>rows</b>"})
    # cotton compiles templates in its loader, so the page is a file
    html = render_to_string("page.html", {"session": session})
    assert "Load &lt;b&gt;rows&lt;/b&gt;" in html, html
    assert 'role="progressbar"' in html, html
    tags = Template("{% load progress_ui %}{% progress_scripts %}").render(Context({}))
    assert "htmx" in tags, tags
    css = finders.find("progress_ui/progress_ui.css")
    assert css and css.startswith(expected_home), css
    js = finders.find("progress_ui/progress_ui.js")
    assert js and js.startswith(expected_home), js
    print("INSTALL-OK")
    """
)


def test_built_wheel_installs_and_renders(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("django_progress_ui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "progress_ui/py.typed" in names
    assert any(n.startswith("progress_ui/templates/cotton/progress/") for n in names)
    assert any(n.startswith("progress_ui/static/progress_ui/vendor/") for n in names)
    # dev leftovers stay out
    assert not [n for n in names if n.startswith(("tests/", "demo/", "progress_ui/templates/demo"))]

    install_and_render(tmp_path, str(wheel), home=str(tmp_path / "venv"))


def test_editable_install_finds_templates_and_static(tmp_path: Path) -> None:
    # The layout a contributor (or a project vendoring a checkout) gets: no
    # wheel, so templates and static must already live inside the package.
    install_and_render(tmp_path, "-e", str(ROOT), home=str(ROOT / "progress_ui"))


def install_and_render(tmp_path: Path, *requirement: str, home: str) -> None:
    """A fresh virtualenv with ``requirement`` installed, and a minimal project
    whose own page (in an app's ``templates/``) renders a component."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", *requirement],
        check=True,
        capture_output=True,
        timeout=600,
    )
    project = tmp_path / "project"
    app_templates = project / "site_pages" / "templates"
    app_templates.mkdir(parents=True)
    (project / "site_pages" / "__init__.py").write_text("")
    (project / "urls.py").write_text(
        "from django.urls import include, path\n"
        "urlpatterns = [path('progress/', include('progress_ui.urls'))]\n"
    )
    (app_templates / "page.html").write_text('<c-progress.session :session="session" />')
    result = subprocess.run(
        [str(py), "-c", SCRIPT, home], capture_output=True, text=True, timeout=120, cwd=project
    )
    assert result.returncode == 0, result.stderr
    assert "INSTALL-OK" in result.stdout
