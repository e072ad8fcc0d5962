"""ASGI app for the test settings (served by uvicorn in ``tests/support/servers.py``, which
wraps it so static files are served too). Streams give their request thread back
(``progress_ui.streaming.threads.release_stream_threads``), as the README
recommends."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")

application = get_asgi_application()

from progress_ui.streaming.threads import release_stream_threads  # noqa: E402  (apps loaded)

application = release_stream_threads(application)
