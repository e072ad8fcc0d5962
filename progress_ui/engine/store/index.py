"""The session index: which sessions exist, so that they can be listed on any cache.

Django's cache API cannot enumerate keys, so listing needs keys whose names a
reader can work out: ``INDEX_SIZE`` slots, ``<KEY_PREFIX>:index:<n>``, each
holding one entry ``[session_id, created_at]``.

- **One write per session created** (after one read): a new session looks at
  ``PROBES`` neighbouring slots from one picked by its (random) id, takes the
  first free one with ``add`` (atomic on Redis, LocMem and the database cache:
  of two sessions that pick the same free slot at once, one gets it and the
  other tries the next), and when all are taken, replaces the oldest of them.
- **Bounded**: never more than ``INDEX_SIZE`` entries; past that many sessions,
  the oldest entries go first (the oldest of the few slots a new one looks at,
  so roughly, not exactly, the oldest of all).
- **Expiring**: an entry lives ``ENTRY_LIFETIME``. A session renews its own keys
  as it runs, which an entry written once cannot, so the entry outlives most
  sessions; a listing skips entries whose session is gone, and a new session
  replaces those first (they are the oldest).
- **Concurrent writers**: an entry is lost only when two sessions created at
  the same moment pick the same oldest slot (a full index and a collision of
  their neighbourhoods), or others take every free slot a writer saw, twice;
  either drops one entry at most (a writer whose free slots were all taken
  meanwhile looks once more), and never breaks the index.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

from progress_ui.conf import current as current_settings
from progress_ui.core.validation import is_valid_session_id
from progress_ui.engine.plans import Plan, io
from progress_ui.engine.store.base import StoreBackend

#: Slots a new session looks at for a free one.
PROBES = 8
#: Seconds an entry lives (a day): longer than nearly every job.
ENTRY_LIFETIME = 24 * 3600
#: Keys per read: below the bound that SQLite (999 variables before 3.32) and
#: Oracle (1,000 items in a list) put on one query of the database cache.
READ_CHUNK = 500


class Entry(NamedTuple):
    session_id: str
    #: When the session was created (seconds since the epoch).
    created_at: float


def slot_key(slot: int) -> str:
    return f"{current_settings().KEY_PREFIX}:index:{slot}"


def _entry(value: Any) -> Entry | None:
    """An entry as stored, or None for anything else."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    session_id, created_at = value
    if not is_valid_session_id(session_id) or not isinstance(created_at, int | float):
        return None
    return Entry(session_id, float(created_at))


def record(backend: StoreBackend, session_id: str, created_at: float) -> Plan[None]:
    """The plan that enters a new session in the index (nothing when
    ``INDEX_SIZE`` is 0)."""
    size = current_settings().INDEX_SIZE
    if size <= 0:
        return
    first = zlib.crc32(session_id.encode())
    keys = list(dict.fromkeys(slot_key((first + n) % size) for n in range(PROBES)))
    value = [session_id, created_at]
    for _ in range(2):  # again only if others took every free slot meanwhile
        found = yield io(backend.get_many, backend.aget_many, keys)
        free = [key for key in keys if key not in found]
        for key in free:
            if (yield io(backend.add, backend.aadd, key, value, ENTRY_LIFETIME)):
                return
        if not free:
            # Every slot looked at is taken: replace the oldest entry.
            read = {key: _entry(stored) for key, stored in found.items()}
            oldest = min(read, key=lambda key: e.created_at if (e := read[key]) else 0.0)
            yield io(backend.set_many, backend.aset_many, {oldest: value}, ENTRY_LIFETIME)
            return


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), READ_CHUNK):
        yield keys[start : start + READ_CHUNK]


def read_many(backend: StoreBackend, keys: list[str]) -> dict[str, Any]:
    """``backend.get_many(keys)`` in chunks of ``READ_CHUNK``."""
    found: dict[str, Any] = {}
    for chunk in _chunks(keys):
        found.update(backend.get_many(chunk))
    return found


def entries(backend: StoreBackend) -> list[Entry]:
    """Every entry of the index, newest first (each session once)."""
    keys = [slot_key(n) for n in range(max(0, current_settings().INDEX_SIZE))]
    found = (_entry(value) for value in read_many(backend, keys).values())
    newest = {e.session_id: e for e in sorted(filter(None, found), key=lambda e: e.created_at)}
    return sorted(newest.values(), key=lambda e: (-e.created_at, e.session_id))
