"""Listing the sessions in the progress cache, for operators (``manage.py progress list``).

Only a Redis cache (Django's ``django.core.cache.backends.redis.RedisCache``) can
enumerate its keys: the listing SCANs (never ``KEYS``) for the session
description keys, ``<KEY_PREFIX>:<session_id>`` (``store.meta_key``), as the
cache backend names them (its own ``KEY_PREFIX``, version and key function), and
reads each match as ``ProgressSession.get()`` does. The other keys of a session
(``:t:``, ``:e:``, ``:job:``) and the liveness keys (``:alive:``) have more
``:`` parts and are skipped. Other caches raise :class:`ListingUnsupported`.

The listing is for someone who already has the cache: it shows every session,
whoever owns it, with its full id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.redis import RedisCache

from . import store
from .session import ProgressSession
from .validation import is_valid_session_id

#: Keys asked of Redis per SCAN step (a hint to the server, not a limit).
SCAN_COUNT = 1000
#: A session id that stands for "any id" while working out the backend's key form.
_PROBE = "P" * 32
#: The characters Redis glob patterns treat specially.
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]^])")


class ListingUnsupported(Exception):
    """The progress cache cannot enumerate its keys (listing needs Redis)."""


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    #: A ``ReportedStatus`` value, or "expired" when the session vanished while listed.
    status: str
    overall_percent: int
    task_count: int
    #: "user:<pk>", "browser" (an anonymous visitor) or "" (no owner: anyone with the id).
    owner: str


def supports_listing() -> bool:
    """True when the progress cache is one whose keys can be listed (Redis)."""
    return isinstance(store.cache(), RedisCache)


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _key_form() -> tuple[str, str]:
    """(before, after): the backend's key for a session id is before + id + after."""
    full = store.cache().make_key(store.meta_key(_PROBE))
    before, probe, after = full.rpartition(_PROBE)
    if not probe:
        raise ListingUnsupported(
            "progress_ui: the cache's KEY_FUNCTION does not keep keys readable, "
            "so sessions cannot be listed."
        )
    return before, after


def session_ids() -> Iterator[str]:
    """The ids of the sessions stored in the progress cache, in SCAN order (a key
    may come twice while Redis rehashes; callers that care deduplicate)."""
    cache = store.cache()
    if not isinstance(cache, RedisCache):
        raise ListingUnsupported(
            "Listing sessions needs a Redis cache "
            "(django.core.cache.backends.redis.RedisCache) for PROGRESS_UI['CACHE_ALIAS']."
        )
    before, after = _key_form()
    # 32 single-character wildcards: only keys with room for exactly one session id.
    pattern = _glob_escape(before) + "?" * 32 + _glob_escape(after)
    # The first server takes every write (the others are its replicas).
    client: Any = cache._cache.get_client(write=True)

    try:
        keys: Iterator[Any] = client.scan_iter(match=pattern, count=SCAN_COUNT)
    except Exception as exc:
        raise _unavailable(exc) from exc
    while True:
        try:
            raw = next(keys)
        except StopIteration:
            return
        except Exception as exc:  # redis-py's ConnectionError, TimeoutError...
            raise _unavailable(exc) from exc
        key = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if not (key.startswith(before) and key.endswith(after)):
            continue
        candidate = key[len(before) : len(key) - len(after)]
        if is_valid_session_id(candidate):  # ":t:", ":alive:"... have a ":" in them
            yield candidate


def _unavailable(exc: Exception) -> store.CacheUnavailable:
    return store.CacheUnavailable(f"progress_ui: the cache failed ({type(exc).__name__})")


def _owner_kind(owner: str | None) -> str:
    if owner is None:
        return ""
    kind = owner.partition(":")[0]
    # A user's primary key helps the operator; a browser token is a keyed hash
    # that says nothing useful.
    return owner if kind == "user" else kind


def list_sessions(limit: int | None = None) -> list[SessionSummary]:
    """A summary of each stored session (at most ``limit``), running ones first.
    Raises :class:`ListingUnsupported` on a cache that is not Redis, and
    ``store.CacheUnavailable`` when the cache cannot be reached."""
    seen: set[str] = set()
    found: list[SessionSummary] = []
    for session_id in session_ids():
        if session_id in seen:
            continue
        seen.add(session_id)
        session = ProgressSession.get(session_id)
        if session is None:  # expired between the SCAN and the read
            continue
        snap = session.to_dict()
        found.append(
            SessionSummary(
                session_id=session_id,
                status="expired" if snap["expired"] else snap["status"],
                overall_percent=snap["overall_percent"],
                task_count=len(snap["tasks"]),
                owner=_owner_kind(session.owner),
            )
        )
        if limit is not None and len(found) >= limit:
            break
    order = {"running": 0, "pending": 1, "error": 2, "cancelled": 3, "complete": 4}
    found.sort(key=lambda s: (order.get(s.status, 5), s.session_id))
    return found
