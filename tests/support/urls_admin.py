"""The test URLs with Django's admin (for the staff link on the admin index)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, path

from tests.support.urls import urlpatterns as base

urlpatterns: list[URLPattern | URLResolver] = [path("admin/", admin.site.urls), *base]
