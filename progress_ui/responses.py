"""The answers every progress endpoint shares: private, uncacheable, and the same
404 for "not there" and "not yours".

Everything a progress view answers depends on who asks (the owner rule), so no
shared cache may keep it: ``Cache-Control: private, no-store`` and ``Vary: Cookie``
on every answer, 404s included, so headers never tell a missing id from a
stranger's. Django would log the path of a 404 (it holds the session id, the only
secret of a session without an owner): these 404s log a hash of it instead.
"""

from __future__ import annotations

import logging

from django.http import HttpResponse, HttpResponseBase, HttpResponseNotFound
from django.utils.cache import patch_cache_control, patch_vary_headers

from .validation import log_id

logger = logging.getLogger("progress_ui")

NOT_FOUND_TEXT = "No such progress session."


def make_private(response: HttpResponseBase) -> HttpResponseBase:
    """Mark ``response`` as for this visitor only, never stored by any cache."""
    patch_cache_control(response, private=True, no_store=True, no_cache=True, max_age=0)
    patch_vary_headers(response, ("Cookie",))
    return response


def not_found_response(session_id: str) -> HttpResponse:
    """The one 404 of missing, expired, malformed and foreign session ids."""
    response = HttpResponseNotFound(NOT_FOUND_TEXT, content_type="text/plain; charset=utf-8")
    make_private(response)
    # Django's request logger would write the path, and with it the id.
    response._has_been_logged = True  # type: ignore[attr-defined]
    logger.info("progress_ui: 404 for session %s", log_id(session_id))
    return response


def unavailable_response() -> HttpResponse:
    """503 while the progress cache cannot be reached: no traceback, try again soon."""
    response = HttpResponse(
        "Progress is unavailable right now.", status=503, content_type="text/plain; charset=utf-8"
    )
    response["Retry-After"] = "2"
    make_private(response)
    return response


BUSY_TEXT = "Too many live progress streams on this server right now: poll instead."


def too_many_streams(retry_after: int) -> HttpResponse:
    """503 for a stream beyond the process's cap (``progress_ui.stream_limits``):
    ``progress_ui.js`` polls the component instead; other clients may come back
    after ``Retry-After`` seconds. Not logged by Django (as an error, with the
    session id in the path): ``stream_limits`` warns once a minute instead."""
    response = HttpResponse(BUSY_TEXT, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(int(retry_after))
    make_private(response)
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
