"""Sends django-tasks-db's table to the database alias named by the setting
``PROGRESS_TEST_TASKS_DATABASE`` (the PostgreSQL worker tests), and nothing
else there."""

from __future__ import annotations

from typing import Any

from django.conf import settings

APP_LABEL = "django_tasks_database"


def _alias() -> str | None:
    return getattr(settings, "PROGRESS_TEST_TASKS_DATABASE", None)


class TasksDatabaseRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return _alias() if model._meta.app_label == APP_LABEL else None

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        alias = _alias()
        if alias is None:
            return None
        return (app_label == APP_LABEL) == (db == alias)
