"""A task backend with its own Task class, as some third-party backends have:
``progress_task`` must keep that class (and its extra field)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.module_loading import import_string

from progress_ui.contrib.django_tasks import Task
from tests.support.settings_tasks import TASKS_PACKAGE

ImmediateBackend = import_string(f"{TASKS_PACKAGE}.backends.immediate.ImmediateBackend")


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelledTask(Task):  # type: ignore[type-arg]
    label: str = "labelled"


class LabelledImmediateBackend(ImmediateBackend):  # type: ignore[misc,valid-type]
    task_class = LabelledTask
