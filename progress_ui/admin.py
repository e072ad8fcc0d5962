"""The "Progress sessions" line on the admin index, for whoever holds
``PROGRESS_UI["STAFF_PERMISSION"]``: it leads to the staff page
(``progress_ui:staff``), which the package serves itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse

from progress_ui.access import is_progress_staff
from progress_ui.models import ProgressSessions

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[ProgressSessions]
else:
    _ModelAdmin = admin.ModelAdmin  # generic only for the type checker


@admin.register(ProgressSessions)
class ProgressSessionsAdmin(_ModelAdmin):
    """Only the list, which is the staff page: there is no table to add to,
    change or delete from."""

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_progress_staff(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_progress_staff(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(reverse("progress_ui:staff"))
