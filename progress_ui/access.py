"""Who may read a session over HTTP.

Views answer everyone the permission function refuses exactly as for a missing
session (404, see ``progress_ui.responses``), so a stranger cannot even learn
that an id exists. The default rule is ownership (``progress_ui.ownership``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import Http404
from django.utils.module_loading import import_string

from .conf import settings
from .ownership import is_owner, requester
from .session import ProgressSession

if TYPE_CHECKING:
    from django.http import HttpRequest


class ProgressNotFound(Http404):
    """A session id that is missing, expired, malformed or not the requester's."""

    def __init__(self, session_id: str) -> None:
        super().__init__("No such progress session.")
        self.session_id = session_id


def has_progress_permission(request: HttpRequest, progress: ProgressSession) -> bool:
    """Default rule: the owner may read; a session created without an owner is
    readable by anyone who has its (unguessable) id. Replace it with
    ``PROGRESS_UI['PERMISSION_FUNCTION']``."""
    return is_owner(request, progress.owner)


def can_read(request: HttpRequest, progress: ProgressSession) -> bool:
    check = import_string(settings.PERMISSION_FUNCTION)
    return bool(check(request, progress))


def get_readable_session(request: HttpRequest, session_id: str) -> ProgressSession:
    """The session if ``request`` may read it; else :class:`ProgressNotFound` (the
    same for missing, expired, malformed and forbidden ids). Malformed ids never
    reach the cache."""
    # Who asks is read first, for every id: the same work and the same headers
    # whether the id exists or not.
    requester(request)
    progress = ProgressSession.get(session_id)
    if progress is None or not can_read(request, progress):
        raise ProgressNotFound(session_id)
    return progress
