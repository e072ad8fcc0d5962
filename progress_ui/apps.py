from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from progress_ui.engine.queued import QueuedJob


def _django_tasks_failed(job: QueuedJob) -> bool:
    # Imported when a remembered Django Tasks job is first looked at: only code
    # bases that enqueue progress tasks on Django Tasks load the integration.
    from progress_ui.contrib.django_tasks import job_failed

    return job_failed(job)


async def _django_tasks_afailed(job: QueuedJob) -> bool:
    from progress_ui.contrib.django_tasks import ajob_failed

    return await ajob_failed(job)


class ProgressUIConfig(AppConfig):
    name = "progress_ui"
    verbose_name = "Progress UI"
    # Fixed, so the migration of progress_ui.models fits every project's default.
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from progress_ui import checks, conf  # noqa: F401  (registers checks and the settings signal)
        from progress_ui.engine.queued import Probe, register

        # Every process that reads sessions can ask Django Tasks about the jobs
        # that progress_ui.contrib.django_tasks remembered (engine.queued),
        # whether or not it imported that module itself.
        register("django_tasks", Probe(_django_tasks_failed, _django_tasks_afailed))
