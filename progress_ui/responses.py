"""The answers every progress endpoint shares: private, uncacheable, and the same
404 for "not there" and "not yours".

Everything a progress view answers depends on who asks (the owner rule), so no
shared cache may keep it: ``Cache-Control: private, no-store`` and ``Vary: Cookie``
on every answer, 404s included, so headers never tell a missing id from a
stranger's. Django would log the path of a 404 (it holds the session id, the only
secret of a session without an owner): these 404s log a hash of it instead, and
a filter on Django's ``django.request`` logger (:class:`QuietRequests`) drops
Django's record of the request (the same for the 503 of a stream beyond the cap).
"""

from __future__ import annotations

import logging
import weakref

from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotFound
from django.utils.cache import patch_cache_control, patch_vary_headers

from progress_ui.core.validation import log_id

logger = logging.getLogger("progress_ui")

NOT_FOUND_TEXT = "No such progress session."


class QuietRequests(logging.Filter):
    """Drops the records Django's request logger writes (with the path, and so the
    session id) for requests answered by :func:`keep_out_of_request_log`."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: weakref.WeakSet[HttpRequest] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return request is None or request not in self.requests


_quiet = QuietRequests()


def keep_out_of_request_log(request: HttpRequest | None) -> None:
    """Django's ``django.request`` logger will not log ``request`` (it logs every
    4xx and 5xx answer with its path)."""
    if request is None:
        return
    _quiet.requests.add(request)
    # Idempotent; here rather than at import, so it follows any LOGGING setup.
    logging.getLogger("django.request").addFilter(_quiet)


def make_private(response: HttpResponseBase) -> HttpResponseBase:
    """Mark ``response`` as for this visitor only, never stored by any cache."""
    patch_cache_control(response, private=True, no_store=True, no_cache=True, max_age=0)
    patch_vary_headers(response, ("Cookie",))
    return response


def not_found_response(session_id: str | None, request: HttpRequest | None = None) -> HttpResponse:
    """The one 404 of missing, expired, malformed and foreign session ids, and of
    the staff page for those who may not see it (``session_id`` None). Pass the
    ``request`` to keep its path, and with it the id, out of Django's log."""
    response = HttpResponseNotFound(NOT_FOUND_TEXT, content_type="text/plain; charset=utf-8")
    make_private(response)
    keep_out_of_request_log(request)
    if session_id is None:
        logger.info("progress_ui: 404 for the staff page")
    else:
        logger.info("progress_ui: 404 for session %s", log_id(session_id))
    return response


def unavailable_response(request: HttpRequest | None = None) -> HttpResponse:
    """503 while the progress cache cannot be reached: no traceback, try again soon.
    ``request`` stays out of Django's request log (its path holds the session id;
    the outage itself is logged once, by ``streaming.outage``)."""
    keep_out_of_request_log(request)
    response = HttpResponse(
        "Progress is unavailable right now.", status=503, content_type="text/plain; charset=utf-8"
    )
    response["Retry-After"] = "2"
    make_private(response)
    return response


BUSY_TEXT = "Too many live progress streams on this server right now: poll instead."
CLIENT_BUSY_TEXT = "Too many live progress streams for you right now: poll instead."


def too_many_streams(retry_after: int, request: HttpRequest | None = None) -> HttpResponse:
    """503 for a stream beyond the process's cap (``progress_ui.streaming.limits``):
    ``progress_ui.js`` polls the component instead; other clients may come back
    after ``Retry-After`` seconds. Kept out of Django's log for ``request`` (an
    error, with the session id in the path): ``streaming.limits`` warns once a
    minute instead."""
    return _busy(BUSY_TEXT, 503, retry_after, request)


def too_many_streams_for_client(
    retry_after: int, request: HttpRequest | None = None
) -> HttpResponse:
    """429 for a stream beyond its client's share (``MAX_STREAMS_PER_CLIENT``):
    answered as :func:`too_many_streams`, which ``progress_ui.js`` treats alike
    (any stream that cannot connect: the component polls)."""
    return _busy(CLIENT_BUSY_TEXT, 429, retry_after, request)


def _busy(text: str, status: int, retry_after: int, request: HttpRequest | None) -> HttpResponse:
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(int(retry_after))
    make_private(response)
    keep_out_of_request_log(request)
    return response
