from __future__ import annotations

from django.contrib.auth.views import LogoutView
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path

from progress_ui import ProgressSession
from progress_ui.mixins import ProgressSessionView


def start_owned(request: HttpRequest) -> HttpResponse:
    """Creates a session owned by the visitor (for access tests); answers its id."""
    return HttpResponse(ProgressSession.create({"a": "A"}, request=request).session_id)


urlpatterns: list[URLPattern | URLResolver] = [
    path("progress/", include("progress_ui.urls")),
    path("tests-start-owned/", start_owned),
    path("tests-logout/", LogoutView.as_view(next_page="/")),
    path("tests-page/<str:session_id>/", ProgressSessionView.as_view()),
    path(
        "tests-cancellable-page/<str:session_id>/",
        ProgressSessionView.as_view(progress_cancellable=True),
    ),
]
