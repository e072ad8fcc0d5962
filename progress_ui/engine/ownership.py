"""Owner tokens: who created a session, as the engine stores it.

A session created with ``request=`` records the token of whoever made the
request: the user's primary key for an authenticated user, else a keyed hash of
a random secret kept in the browser's Django session data (``SESSION_FIELD``).
The secret, not the session key, makes the owner: a logout (which flushes the
session) ends access, and two browsers never share a secret even when their
session keys collide (``signed_cookies`` sessions made in the same second). The
session key is rotated when the secret is made, so a key planted in a victim's
browser (session fixation) does not reach it. ``progress_ui.access`` turns this
into the HTTP rule (404 for everyone else).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings

if TYPE_CHECKING:
    from django.http import HttpRequest

USER_PREFIX = "user:"
BROWSER_PREFIX = "browser:"
#: Key of the owner secret in the Django session's data.
SESSION_FIELD = "_progress_ui_owner"


def _browser_token(secret: str) -> str:
    # Keyed hash: the cache never holds the secret itself.
    digest = hmac.new(django_settings.SECRET_KEY.encode(), secret.encode(), hashlib.sha256)
    return BROWSER_PREFIX + digest.hexdigest()


def owner_for_request(request: HttpRequest) -> str | None:
    """The owner token for whoever made ``request``: the user, else this browser
    (made on first use, in its Django session); None when neither auth nor
    sessions are on."""
    user_token, _ = requester(request)
    if user_token is not None:
        return user_token
    session = getattr(request, "session", None)
    if session is None:
        return None
    secret = session.get(SESSION_FIELD)
    if not isinstance(secret, str) or not secret:
        secret = secrets.token_urlsafe(24)
        session[SESSION_FIELD] = secret
        # A new session key for the new secret: a key someone else planted in
        # this browser (session fixation) no longer leads to it.
        session.cycle_key()
    return _browser_token(secret)


def requester(request: HttpRequest) -> tuple[str | None, str | None]:
    """(user token, browser token) of whoever made ``request``. Reads the user and
    the session data every time, so every lookup does the same work and sends
    the same ``Vary: Cookie``, whether the id exists, is malformed or foreign.
    (``progress_ui.access.arequester`` reads them with Django's async API.)"""
    user = getattr(request, "user", None)
    session = getattr(request, "session", None)
    secret = session.get(SESSION_FIELD) if session is not None else None
    return tokens(user, secret)


def tokens(user: Any, secret: object) -> tuple[str | None, str | None]:
    """(user token, browser token) for a request's user (None without auth) and
    the owner secret in its session data (``SESSION_FIELD``)."""
    authenticated = user is not None and user.is_authenticated
    user_token = f"{USER_PREFIX}{user.pk}" if authenticated else None
    browser_token = _browser_token(secret) if isinstance(secret, str) and secret else None
    return user_token, browser_token


def is_owner(request: HttpRequest, owner: str | None) -> bool:
    """True when ``request`` comes from ``owner`` (always true for no owner)."""
    return owns(owner, requester(request))


def owns(owner: str | None, requester_tokens: tuple[str | None, str | None]) -> bool:
    """The ownership rule: no owner, or one of the requester's tokens is it."""
    if owner is None:
        return True
    matches = [hmac.compare_digest(owner, token) for token in requester_tokens if token is not None]
    return any(matches)
