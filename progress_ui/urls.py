"""``path("progress/", include("progress_ui.urls"))`` mounts, per session id:

- ``progress_ui:sse`` ``<id>/events/``: SSE stream of HTML fragments (htmx)
- ``progress_ui:ndjson`` ``<id>/stream/``: JSON-lines stream (scripts)
- ``progress_ui:json`` ``<id>/json/``: current snapshot as JSON (polling)
- ``progress_ui:fragment`` ``<id>/html/``: the whole component as HTML (no-JS refresh)
- ``progress_ui:cancel`` ``<id>/cancel/``: POST (CSRF-protected) cancels the session

and ``progress_ui:group_sse`` ``events/?session=<id>&session=<id>``: one SSE stream
for several sessions (a page showing many holds one connection); for holders of
``STAFF_PERMISSION``, ``progress_ui:staff`` ``staff/``, the sessions listed, and
``progress_ui:staff_session`` ``staff/<id>/``, one of them with Cancel.
"""

from __future__ import annotations

from django.urls import path

from progress_ui import views

app_name = "progress_ui"

urlpatterns = [
    path("events/", views.GroupSSEView.as_view(), name="group_sse"),
    path("staff/", views.StaffView.as_view(), name="staff"),
    path("staff/<str:session_id>/", views.StaffSessionView.as_view(), name="staff_session"),
    path("<str:session_id>/events/", views.SSEView.as_view(), name="sse"),
    path("<str:session_id>/stream/", views.NDJSONView.as_view(), name="ndjson"),
    path("<str:session_id>/json/", views.JSONView.as_view(), name="json"),
    path("<str:session_id>/html/", views.FragmentView.as_view(), name="fragment"),
    path("<str:session_id>/cancel/", views.CancelView.as_view(), name="cancel"),
]
