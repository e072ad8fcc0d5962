from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from . import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.IndexView.as_view(), name="index"),
    path("start/all/", views.StartAllView.as_view(), name="start-all"),
    path("start/group/", views.StartGroupView.as_view(), name="start-group"),
    path("start/<slug:job>/", views.StartJobView.as_view(), name="start"),
    path("session/<str:session_id>/", views.SessionPageView.as_view(), name="session"),
    path("finished/", views.finished, name="finished"),
    path("report/", views.ReportView.as_view(), name="report"),
    path("report/<str:session_id>.csv", views.report_download, name="report-download"),
    path("progress/", include("progress_ui.urls")),
    # `manage.py createsuperuser`, then /admin/ -> "Progress sessions": the staff page.
    path("admin/", admin.site.urls),
]
