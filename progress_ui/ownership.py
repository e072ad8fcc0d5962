"""Owner tokens: who created a session, as the engine stores it.

A session created with ``request=`` records the token of whoever made the
request: the user's primary key for an authenticated user, else a keyed hash of
the browser's Django session key. ``progress_ui.access`` turns this into the
HTTP rule (404 for everyone else).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from django.conf import settings as django_settings

if TYPE_CHECKING:
    from django.http import HttpRequest

USER_PREFIX = "user:"
BROWSER_PREFIX = "session:"


def _browser_token(session_key: str) -> str:
    # Keyed hash: the cache never holds a usable Django session key.
    digest = hmac.new(
        django_settings.SECRET_KEY.encode(), session_key.encode(), hashlib.sha256
    ).hexdigest()
    return f"{BROWSER_PREFIX}{digest}"


def owner_for_request(request: HttpRequest) -> str | None:
    """The owner token for whoever made ``request`` (creates a Django session for
    an anonymous visitor if needed); None when neither auth nor sessions are on."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"{USER_PREFIX}{user.pk}"
    session = getattr(request, "session", None)
    if session is None:
        return None
    if not session.session_key:
        session.save()
    key = session.session_key
    return _browser_token(key) if key else None


def is_owner(request: HttpRequest, owner: str | None) -> bool:
    """True when ``request`` comes from ``owner`` (always true for no owner)."""
    if owner is None:
        return True
    user = getattr(request, "user", None)
    if owner.startswith(USER_PREFIX):
        return bool(
            user is not None and user.is_authenticated and owner == f"{USER_PREFIX}{user.pk}"
        )
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    return bool(key) and hmac.compare_digest(owner, _browser_token(str(key)))
