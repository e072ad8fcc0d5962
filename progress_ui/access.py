"""Who may read a session.

A session created with ``request=`` records an owner token: the user's primary
key for an authenticated user, else a hash of the browser's Django session key.
Views answer everyone else exactly as for a missing session (404), so a stranger
cannot even learn that an id exists.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from django.conf import settings as django_settings
from django.http import Http404
from django.utils.module_loading import import_string

from .conf import settings

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .session import ProgressSession


def _session_token(session_key: str) -> str:
    # Keyed hash: the cache never holds a usable Django session key.
    digest = hmac.new(
        django_settings.SECRET_KEY.encode(), session_key.encode(), hashlib.sha256
    ).hexdigest()
    return f"session:{digest}"


def owner_for_request(request: HttpRequest) -> str | None:
    """The owner token for whoever made ``request`` (creates a Django session for
    an anonymous visitor if needed); None when neither auth nor sessions are on."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    session = getattr(request, "session", None)
    if session is None:
        return None
    if not session.session_key:
        session.save()
    key = session.session_key
    return _session_token(key) if key else None


def is_owner(request: HttpRequest, progress: ProgressSession) -> bool:
    owner = progress.owner
    if owner is None:
        return True
    user = getattr(request, "user", None)
    if owner.startswith("user:"):
        return bool(user is not None and user.is_authenticated and owner == f"user:{user.pk}")
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    return bool(key) and hmac.compare_digest(owner, _session_token(str(key)))


def has_progress_permission(request: HttpRequest, progress: ProgressSession) -> bool:
    """Default rule: the owner may read; a session created without an owner is
    readable by anyone who has its (unguessable) id. Replace it with
    ``PROGRESS_UI['PERMISSION_FUNCTION']``."""
    return is_owner(request, progress)


def can_read(request: HttpRequest, progress: ProgressSession) -> bool:
    check = import_string(settings.PERMISSION_FUNCTION)
    return bool(check(request, progress))


def _not_found() -> Http404:
    # One message for missing, expired, malformed and forbidden: no existence oracle.
    return Http404("No such progress session.")


def get_readable_session(request: HttpRequest, session_id: str) -> ProgressSession:
    """The session if ``request`` may read it; else ``Http404`` (same for missing,
    expired, malformed and forbidden ids). Malformed ids never reach the cache."""
    from .session import ProgressSession

    progress = ProgressSession.get(session_id)
    if progress is None or not can_read(request, progress):
        raise _not_found()
    return progress


async def aget_readable_session(request: HttpRequest, session_id: str) -> ProgressSession:
    """Async :func:`get_readable_session`."""
    from asgiref.sync import sync_to_async

    from .session import ProgressSession

    progress = await ProgressSession.aget(session_id)
    # The permission hook may touch the ORM (request.user, request.session).
    if progress is None or not await sync_to_async(can_read)(request, progress):
        raise _not_found()
    return progress
