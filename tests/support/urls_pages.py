"""The demo's URLs plus the test pages (``tests.support.pages``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from demo.urls import urlpatterns as demo_urlpatterns
from tests.support import pages

urlpatterns: list[URLPattern | URLResolver] = [
    path("pages/django-htmx/", pages.DjangoHtmxPage.as_view(), name="django-htmx"),
    *demo_urlpatterns,
]
