"""Shared set-up of the benchmarks: the repository on sys.path, tests/support/settings.py,
and the cache alias (PROGRESS_TEST_CACHE) the servers and this process share."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup(cache: str | None = None) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")
    if cache is not None:
        os.environ["PROGRESS_TEST_CACHE"] = cache
    import django

    django.setup()
