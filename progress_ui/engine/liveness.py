"""Which processes running tasks are alive: worker loss turns a bar to an error.

A process that runs a task (``ProgressSession.start``/``update`` in it) claims the
task: its record names the process (:func:`process_token`), and one daemon
thread per process, whatever the number of its tasks, writes the process's
liveness key every ``WORKER_BEAT_INTERVAL`` seconds (with a lifetime of
``WORKER_STALE_TIMEOUT``) while it holds claims. It also renews the lifetime of
the claimed sessions now and then, so a task that runs for an hour without
reporting stays readable while its process lives; a session whose claimed tasks
have all ended (cancelled by a viewer, say, while the work goes on) is not
renewed, and its claims are dropped.

An ending the cache did not take (``progress_ui.engine.writes``) is kept here
(:func:`keep_ending`): the same thread stores it once the cache is back, and
beats meanwhile, so readers do not take the process for lost.

Readers check the runners of RUNNING tasks with :func:`dead_runners`: at most one
cache read per runner per ``WORKER_BEAT_INTERVAL`` in each reading process, on
top of the snapshot's single read. A runner whose key has expired and stayed
missing for 1.5 intervals has stopped (SIGKILL, OOM, a lost machine), and
``ProgressSession`` marks its tasks ERROR: at most ``WORKER_STALE_TIMEOUT`` plus
about three intervals after its last beat (25 s with the defaults).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from progress_ui.conf import ProgressSettings
from progress_ui.conf import current as current_settings
from progress_ui.core.status import ProgressStatus
from progress_ui.core.validation import log_id
from progress_ui.engine import store
from progress_ui.engine.plans import Plan, io, run

logger = logging.getLogger("progress_ui")

#: Longest nap of the beat thread between checks (seconds).
_MAX_NAP = 0.5
#: A claim: (session id, task id) -> the session's task ids (to renew its keys).
Claims = dict[tuple[str, str], list[str]]
#: Stores a kept ending; raises ``store.CacheUnavailable`` while the cache is down.
Retry = Callable[[], object]
#: Endings kept at most (the oldest goes first beyond it).
_MAX_PENDING = 10_000
#: Seconds between two attempts to store the kept endings.
_RETRY_EVERY = 1.0


class _ProcessBeat:
    """The liveness of this process: its token, its claims, its beat thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.token = f"{socket.gethostname()}:{self.pid}:{secrets.token_hex(4)}"
        self.lock = threading.Lock()
        self.claims: Claims = {}
        #: Endings the cache did not take, by (session id, task id).
        self.pending: dict[tuple[str, str], Retry] = {}
        self.next_retry = 0.0
        self.thread: threading.Thread | None = None
        self.last_beat = 0.0
        #: The cache the last beat went to (settings can point elsewhere since).
        self.beat_cache = ""
        self.last_touch = time.monotonic()

    def claim(self, session_id: str, task_ids: list[str], task_id: str) -> None:
        with self.lock:
            self.claims[(session_id, task_id)] = task_ids
            self._ensure_thread()

    def beat_due(self) -> bool:
        conf = current_settings()
        return (
            time.monotonic() - self.last_beat >= conf.WORKER_BEAT_INTERVAL
            or self.beat_cache != conf.CACHE_ALIAS
        )

    def _ensure_thread(self) -> None:
        # Called with the lock held.
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._run, name="progress_ui liveness", daemon=True
            )
            self.thread.start()

    def release(self, session_id: str, task_id: str) -> None:
        with self.lock:
            self.claims.pop((session_id, task_id), None)

    def keep_ending(self, session_id: str, task_id: str, retry: Retry) -> None:
        with self.lock:
            if len(self.pending) >= _MAX_PENDING:
                oldest = next(iter(self.pending))
                del self.pending[oldest]
                logger.warning(
                    "progress_ui: too many endings wait for the cache; the ending of "
                    "session %s is dropped",
                    log_id(oldest[0]),
                )
            # An ending already kept for the task stays: the first ending wins.
            self.pending.setdefault((session_id, task_id), retry)
            self._ensure_thread()

    def beat(self) -> Plan[None]:
        conf = current_settings()
        self.last_beat, self.beat_cache = time.monotonic(), conf.CACHE_ALIAS
        try:
            yield io(store.mark_alive, store.amark_alive, self.token, conf.WORKER_STALE_TIMEOUT)
        except store.CacheUnavailable as exc:
            logger.warning("progress_ui: liveness write failed: %s", exc)

    def _beat(self) -> None:
        run(self.beat())

    def _run(self) -> None:
        while True:
            # Short naps, beating when due: a changed interval or cache (settings
            # reloaded) takes effect within half a second, not after a long sleep.
            conf = current_settings()
            time.sleep(min(conf.WORKER_BEAT_INTERVAL, _MAX_NAP))
            with self.lock:
                if not self.claims and not self.pending:
                    self.thread = None
                    return
                claims = dict(self.claims)
                pending = dict(self.pending)
            try:
                self._round(conf, claims, pending)
            except Exception:
                # One bad round (a cache backend raising something unexpected, a
                # database refusing this thread) must not end the process's
                # liveness: its tasks would look lost to every reader.
                logger.exception("progress_ui: the liveness round failed; retrying")

    def _round(
        self, conf: ProgressSettings, claims: Claims, pending: dict[tuple[str, str], Retry]
    ) -> None:
        due = time.monotonic() - self.last_beat >= conf.WORKER_BEAT_INTERVAL
        if due or self.beat_cache != conf.CACHE_ALIAS:
            self._beat()
        if pending and time.monotonic() >= self.next_retry:
            self._retry_endings(pending)
        self._renew_sessions(claims)

    def _retry_endings(self, pending: dict[tuple[str, str], Retry]) -> None:
        self.next_retry = time.monotonic() + _RETRY_EVERY
        for key, retry in pending.items():
            try:
                retry()
            except store.CacheUnavailable:
                return  # still down: all of them wait for the next attempt
            except Exception:
                logger.exception(
                    "progress_ui: storing the ending of session %s failed", log_id(key[0])
                )
            with self.lock:
                if self.pending.get(key) is retry:
                    del self.pending[key]

    def _renew_sessions(self, claims: Claims) -> None:
        """Renew the sessions whose claimed tasks still run; drop the claims of
        tasks that ended meanwhile (their sessions get no renewal from here)."""
        conf = current_settings()
        if time.monotonic() - self.last_touch < conf.TTL / 3:
            return
        self.last_touch = time.monotonic()
        sessions: dict[str, tuple[list[str], list[str]]] = {}
        for (session_id, task_id), task_ids in claims.items():
            sessions.setdefault(session_id, (task_ids, []))[1].append(task_id)
        for session_id, (task_ids, claimed) in sessions.items():
            try:
                _, records = store.read_all(session_id, task_ids)
                ended = [
                    t
                    for t in claimed
                    if t in records and ProgressStatus(records[t]["status"]).work_ended
                ]
                for task_id in ended:
                    self.release(session_id, task_id)
                if len(ended) < len(claimed):
                    store.touch_session(session_id, task_ids, conf.TTL)
            except store.CacheUnavailable as exc:
                logger.warning(
                    "progress_ui: could not renew session %s: %s", log_id(session_id), exc
                )


_beat: _ProcessBeat | None = None
_beat_lock = threading.Lock()


def _process() -> _ProcessBeat:
    global _beat
    with _beat_lock:
        # A forked child (a prefork worker) is another process: new token, no claims.
        if _beat is None or _beat.pid != os.getpid():
            _beat = _ProcessBeat()
        return _beat


def process_token() -> str:
    """This process's name in task records (host, pid and a random part)."""
    return _process().token


def claim(session_id: str, task_ids: list[str], task_id: str) -> str:
    """Note that this process runs ``task_id``; returns its token for the record.
    No I/O: the writer runs :func:`beat_if_due` before the record is stored."""
    beat = _process()
    beat.claim(session_id, task_ids, task_id)
    return beat.token


def beat_if_due() -> Plan[None]:
    """The plan of a writer that may claim a task: say that this process lives,
    unless it said so less than ``WORKER_BEAT_INTERVAL`` ago. Run before the
    record that names this process is stored, so no reader finds it unknown; a
    cache that cannot be reached only logs a warning."""
    beat = _process()
    if beat.beat_due():
        yield from beat.beat()


def release(session_id: str, task_id: str) -> None:
    """This process no longer runs ``task_id``."""
    _process().release(session_id, task_id)


def keep_ending(session_id: str, task_id: str, retry: Retry) -> None:
    """Keep an ending the cache did not take: ``retry()`` is called from the
    liveness thread (about once a second) until it returns without raising
    ``store.CacheUnavailable``. An ending already kept for the task stays."""
    _process().keep_ending(session_id, task_id, retry)


def held_claims() -> set[tuple[str, str]]:
    """The (session id, task id) pairs this process runs now."""
    beat = _process()
    with beat.lock:
        return set(beat.claims)


def pending_endings() -> set[tuple[str, str]]:
    """The (session id, task id) pairs whose ending waits for the cache."""
    beat = _process()
    with beat.lock:
        return set(beat.pending)


#: Reader side: runner token -> (when last checked, since when its key is missing).
_checked: dict[str, tuple[float, float | None]] = {}
_MAX_CHECKED = 10_000


def _to_check(tokens: set[str]) -> list[str]:
    now, interval = time.monotonic(), current_settings().WORKER_BEAT_INTERVAL
    if len(_checked) > _MAX_CHECKED:
        _checked.clear()
    own = process_token()
    return [
        t for t in tokens if t != own and now - _checked.get(t, (-interval, None))[0] >= interval
    ]


def _record(checked: list[str], alive: set[str]) -> None:
    now = time.monotonic()
    for token in checked:
        missing_since = None if token in alive else (_checked.get(token, (now, None))[1] or now)
        _checked[token] = (now, missing_since)


def _dead(tokens: set[str]) -> set[str]:
    # One miss is not enough: a cleared or evicting cache drops live keys too.
    # A live process writes its key every interval, so a key still missing
    # 1.5 intervals later means no beat came.
    limit = 1.5 * current_settings().WORKER_BEAT_INTERVAL
    now = time.monotonic()
    dead = set()
    for token in tokens:
        missing_since = _checked.get(token, (0.0, None))[1]
        if missing_since is not None and now - missing_since >= limit:
            dead.add(token)
    return dead


def dead_runners(tokens: set[str]) -> set[str]:
    """Those of ``tokens`` whose process has stopped beating."""
    checking = _to_check(tokens)
    if checking:
        _record(checking, store.alive(checking))
    return _dead(tokens)


async def adead_runners(tokens: set[str]) -> set[str]:
    """Async :func:`dead_runners`."""
    checking = _to_check(tokens)
    if checking:
        _record(checking, await store.aalive(checking))
    return _dead(tokens)
