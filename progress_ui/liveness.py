"""Which processes running tasks are alive: worker loss turns a bar to an error.

A process that runs a task (``ProgressSession.start``/``update`` in it) claims the
task: its record names the process (:func:`process_token`), and one daemon
thread per process, whatever the number of its tasks, writes the process's
liveness key every ``WORKER_BEAT_INTERVAL`` seconds (with a lifetime of
``WORKER_STALE_TIMEOUT``) while it holds claims. It also renews the lifetime of
the claimed sessions now and then, so a task that runs for an hour without
reporting stays readable while its process lives.

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

from . import store
from .conf import current as current_settings
from .validation import log_id

logger = logging.getLogger("progress_ui")

#: Longest nap of the beat thread between checks (seconds).
_MAX_NAP = 0.5
#: A claim: (session id, task id) -> the session's task ids (to renew its keys).
Claims = dict[tuple[str, str], list[str]]


class _ProcessBeat:
    """The liveness of this process: its token, its claims, its beat thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.token = f"{socket.gethostname()}:{self.pid}:{secrets.token_hex(4)}"
        self.lock = threading.Lock()
        self.claims: Claims = {}
        self.thread: threading.Thread | None = None
        self.last_beat = 0.0
        #: The cache the last beat went to (settings can point elsewhere since).
        self.beat_cache = ""
        self.last_touch = time.monotonic()

    def claim(self, session_id: str, task_ids: list[str], task_id: str) -> None:
        conf = current_settings()
        with self.lock:
            self.claims[(session_id, task_id)] = task_ids
            beat_due = (
                time.monotonic() - self.last_beat >= conf.WORKER_BEAT_INTERVAL
                or self.beat_cache != conf.CACHE_ALIAS
            )
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="progress_ui liveness", daemon=True
                )
                self.thread.start()
        if beat_due:
            # Before the record names this process, so no reader finds it unknown.
            self._beat()

    def release(self, session_id: str, task_id: str) -> None:
        with self.lock:
            self.claims.pop((session_id, task_id), None)

    def _beat(self) -> None:
        conf = current_settings()
        self.last_beat, self.beat_cache = time.monotonic(), conf.CACHE_ALIAS
        try:
            store.mark_alive(self.token, conf.WORKER_STALE_TIMEOUT)
        except store.CacheUnavailable as exc:
            logger.warning("progress_ui: liveness write failed: %s", exc)

    def _run(self) -> None:
        while True:
            # Short naps, beating when due: a changed interval or cache (settings
            # reloaded) takes effect within half a second, not after a long sleep.
            conf = current_settings()
            time.sleep(min(conf.WORKER_BEAT_INTERVAL, _MAX_NAP))
            with self.lock:
                if not self.claims:
                    self.thread = None
                    return
                claims = dict(self.claims)
            due = time.monotonic() - self.last_beat >= conf.WORKER_BEAT_INTERVAL
            if due or self.beat_cache != conf.CACHE_ALIAS:
                self._beat()
            self._renew_sessions(claims)

    def _renew_sessions(self, claims: Claims) -> None:
        conf = current_settings()
        if time.monotonic() - self.last_touch < conf.TTL / 3:
            return
        self.last_touch = time.monotonic()
        sessions = {session_id: task_ids for (session_id, _), task_ids in claims.items()}
        for session_id, task_ids in sessions.items():
            try:
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
    """Note that this process runs ``task_id``; returns its token for the record."""
    beat = _process()
    beat.claim(session_id, task_ids, task_id)
    return beat.token


def release(session_id: str, task_id: str) -> None:
    """This process no longer runs ``task_id``."""
    _process().release(session_id, task_id)


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
