"""Settings for browser tests of pages the demo does not have: the demo
(``settings_browser``) plus the test pages of ``tests.support.pages``, whose
templates are in ``tests/support/templates``."""

from __future__ import annotations

from pathlib import Path

from tests.support.settings_browser import *  # noqa: F403
from tests.support.settings_browser import TEMPLATES

ROOT_URLCONF = "tests.support.urls_pages"
TEMPLATES = [
    {**TEMPLATES[0], "DIRS": [*TEMPLATES[0]["DIRS"], Path(__file__).resolve().parent / "templates"]}
]
