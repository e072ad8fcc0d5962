"""WSGI entry point of the demo (e.g. ``gunicorn demo.wsgi``)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

application = get_wsgi_application()

# On gunicorn's SIGTERM, open progress streams end at once with a reconnect hint,
# so a restart moves their viewers to another process in seconds.
from progress_ui import end_streams_on_signals  # noqa: E402  (apps loaded)

end_streams_on_signals()
