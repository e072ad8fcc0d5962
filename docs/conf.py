"""Sphinx configuration for django-progress-ui's documentation.

Built with warnings as errors (``make docs``, Read the Docs' ``fail_on_warning``).
autodoc imports the package, so Django is configured here with the smallest
settings that let every documented module import.
"""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django_cotton",
            "django_htmx",
            "progress_ui",
        ],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        USE_TZ=True,
    )
    django.setup()

import progress_ui  # noqa: E402  (after django.setup())

project = "django-progress-ui"
author = "django-progress-ui developers"
copyright = "django-progress-ui developers"
release = progress_ui.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "public_api",  # docs/public_api.py: every public method must be documented
]

exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"django-progress-ui {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": False}
# Names the package only imports under TYPE_CHECKING stay strings in signatures.
autodoc_type_aliases: dict[str, str] = {}

# No intersphinx: the build must not depend on the network (fresh clones, sandboxes).

copybutton_prompt_text = r"\$ "
copybutton_prompt_is_regexp = True
