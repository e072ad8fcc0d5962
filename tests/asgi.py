"""ASGI app for the test settings (served by uvicorn in ``tests/servers.py``, which
wraps it so static files are served too)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

application = get_asgi_application()
