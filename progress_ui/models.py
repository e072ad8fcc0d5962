"""No tables: one unmanaged model that carries the staff permission and the
admin index entry.

Django's permissions belong to a model, so a permission of the app needs one;
an unmanaged model without default permissions (as django-rq and
django-constance do) gives ``progress_ui.manage_progress_sessions`` and a
"Progress sessions" line on the admin index (``progress_ui.admin``) without a
table. Sessions themselves live in the cache, never in the database.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ProgressSessions(models.Model):
    """Stands for the sessions in the progress cache; never queried."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("manage_progress_sessions", _("Can see and cancel every progress session"))]
        verbose_name = _("progress sessions")
        verbose_name_plural = _("progress sessions")

    def __str__(self) -> str:
        return str(self._meta.verbose_name_plural)
