from __future__ import annotations

from django.apps import AppConfig


class ProgressUIConfig(AppConfig):
    name = "progress_ui"
    verbose_name = "Progress UI"

    def ready(self) -> None:
        from . import checks, conf  # noqa: F401  (registers checks and the settings signal)
