"""Test pages for the browser tests, beside the demo's (``settings_pages``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.views.generic import TemplateView

from demo.jobs import JOBS
from progress_ui.mixins import StartProgressMixin


class DjangoHtmxPage(StartProgressMixin, TemplateView):
    """A page as a django-htmx project writes it: htmx from django-htmx's
    ``{% htmx_script %}`` (the version of the server's markup), the package's
    scripts without htmx; with ``?scripts=package``, the other setup the docs
    give: the package's htmx (``{% progress_scripts %}``) and
    ``{% django_htmx_script %}``. POST starts the demo's quick job."""

    template_name = "tests/django_htmx.html"
    progress_tasks = JOBS["quick"].tasks
    progress_job = JOBS["quick"].run
    progress_title = "Quick job"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        version = settings.PROGRESS_UI.get("HTMX_VERSION", 2)
        return {
            **super().get_context_data(**kwargs),
            "htmx_version": version,
            "package_htmx": self.request.GET.get("scripts") == "package",
        }
