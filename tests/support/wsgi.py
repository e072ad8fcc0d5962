"""WSGI app for the test settings (served by gunicorn in ``tests/support/servers.py``)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.settings")

application = get_wsgi_application()
