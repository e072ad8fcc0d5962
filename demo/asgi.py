"""ASGI entry point of the demo: ``uvicorn demo.asgi:application``. Wrapped so
uvicorn serves the static files (htmx, CSS) as ``runserver`` does, and so open
progress streams give their request thread back (``release_stream_threads``)."""

from __future__ import annotations

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

django_application = get_asgi_application()

from progress_ui.streaming.threads import release_stream_threads  # noqa: E402  (apps loaded)

# A process that keeps many progress streams open spends far less time in
# Python's garbage collector with this (see progress_ui.tuning).
from progress_ui.tuning import tune_garbage_collector  # noqa: E402

application = ASGIStaticFilesHandler(release_stream_threads(django_application))

tune_garbage_collector()
