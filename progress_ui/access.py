"""Who may read a session over HTTP.

Views answer everyone the permission function refuses exactly as for a missing
session (404, see ``progress_ui.responses``), so a stranger cannot even learn
that an id exists. The default rule is ownership (``progress_ui.engine.ownership``):
:func:`get_readable_session` applies it in sync views, :func:`aget_readable_session`
in async ones (the stream views under ASGI), reading the user and the session
data with Django's async API and applying the same rule (``ownership.owns``).

Whoever holds ``STAFF_PERMISSION`` (:func:`is_progress_staff`) may also read and
cancel every session, whatever the rule says: the staff page opens them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.http import Http404
from django.utils.module_loading import import_string

from progress_ui.conf import current as current_settings
from progress_ui.engine.ownership import SESSION_FIELD, is_owner, owns, requester, tokens
from progress_ui.engine.session import ProgressSession
from progress_ui.streaming.limits import client_of

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
    check = import_string(current_settings().PERMISSION_FUNCTION)
    return bool(check(request, progress))


def is_progress_staff(request: HttpRequest) -> bool:
    """Whether ``request``'s user holds ``PROGRESS_UI["STAFF_PERMISSION"]`` (active
    superusers hold every permission): the staff page, and every session."""
    has_perm = getattr(getattr(request, "user", None), "has_perm", None)
    return has_perm is not None and bool(has_perm(current_settings().STAFF_PERMISSION))


async def ais_progress_staff(request: HttpRequest) -> bool:
    """Async :func:`is_progress_staff` (``request.auser()``, ``user.ahas_perm()``)."""
    auser = getattr(request, "auser", None)
    user: Any = await auser() if auser is not None else getattr(request, "user", None)
    ahas_perm = getattr(user, "ahas_perm", None)
    if ahas_perm is None:  # a user model of its own, without PermissionsMixin
        return await sync_to_async(is_progress_staff)(request)
    return bool(await ahas_perm(current_settings().STAFF_PERMISSION))


def get_readable_session(request: HttpRequest, session_id: str) -> ProgressSession:
    """The session if ``request`` may read it; else :class:`ProgressNotFound` (the
    same for missing, expired, malformed and forbidden ids). Malformed ids never
    reach the cache."""
    # Who asks is read first, for every id: the same work and the same headers
    # whether the id exists or not.
    requester(request)
    progress = ProgressSession.get(session_id)
    if progress is not None and can_read(request, progress):
        return progress
    # Asked for missing ids too, so they cost what a stranger's id costs.
    if is_progress_staff(request) and progress is not None:
        return progress
    raise ProgressNotFound(session_id)


async def arequester(request: HttpRequest) -> tuple[str | None, str | None]:
    """``ownership.requester`` for async code: the user from ``request.auser()``
    and the session data from the session's async API."""
    auser = getattr(request, "auser", None)
    user: Any = await auser() if auser is not None else getattr(request, "user", None)
    session = getattr(request, "session", None)
    secret = await session.aget(SESSION_FIELD) if session is not None else None
    return tokens(user, secret)


def stream_client(request: HttpRequest) -> str:
    """Who ``request``'s stream counts against under ``MAX_STREAMS_PER_CLIENT``
    (``streaming.limits.client_of``): the user, else the IP address."""
    return client_of(requester(request)[0], request.META.get("REMOTE_ADDR"))


async def astream_client(request: HttpRequest) -> str:
    """Async :func:`stream_client`."""
    return client_of((await arequester(request))[0], request.META.get("REMOTE_ADDR"))


async def aget_readable_session(request: HttpRequest, session_id: str) -> ProgressSession:
    """Async :func:`get_readable_session`. The default rule runs without a thread;
    a ``PERMISSION_FUNCTION`` of your own is called through ``sync_to_async``."""
    requester_tokens = await arequester(request)
    progress = await ProgressSession.aget(session_id)
    if progress is not None and await _acan_read(request, progress, requester_tokens):
        return progress
    if await ais_progress_staff(request) and progress is not None:
        return progress
    raise ProgressNotFound(session_id)


async def _acan_read(
    request: HttpRequest,
    progress: ProgressSession,
    requester_tokens: tuple[str | None, str | None],
) -> bool:
    check = import_string(current_settings().PERMISSION_FUNCTION)
    if check is has_progress_permission:
        return owns(progress.owner, requester_tokens)
    return bool(await sync_to_async(check)(request, progress))
